// piscina with transfer: the reply's buffer is moved back instead of copied.
import { move } from 'piscina';

export default function echo(task) {
  return move(task);
}
