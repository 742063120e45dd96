/** Where the history store reports an outage and its end: a pino logger fits, and so does a test's. */
export interface HistoryLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}
