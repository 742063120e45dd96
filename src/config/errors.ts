/** A configuration that cannot start the supervisor. The message is one line naming key, value and rule. */
export class ConfigError extends Error {
  readonly code = 'E_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
