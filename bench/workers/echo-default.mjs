// piscina and tinypool call a module's default export with the task.
export default function echo(task) {
  return task;
}
