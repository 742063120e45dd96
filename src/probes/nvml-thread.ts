// The NVML thread: NVML calls are synchronous, so they run here, where a call that hangs in the driver
// stalls this thread only, never the supervisor's event loop. Loads koffi and the library once at
// start; answers each 'read' with a whole reading.
import { parentPort, workerData } from 'node:worker_threads';
import { bindNvml } from './nvml-binding.js';
import { NvmlReading, nvmlFailure, NvmlError } from './nvml-read.js';
import type { GpuFailure } from './gpu-reader.js';
import type { NvmlReply, NvmlRequest, NvmlThreadData } from './nvml-messages.js';

const port = parentPort;
if (!port) throw new Error('nvml-thread runs as a worker thread');
const { library } = workerData as NvmlThreadData;

function open(): { reading: NvmlReading; shutdown: () => void } | GpuFailure {
  let nvml;
  try {
    nvml = bindNvml(library);
  } catch (error) {
    return { kind: 'not-installed', message: `cannot load ${library}: ${(error as Error).message}` };
  }
  const code = nvml.init();
  if (code !== 0) return nvmlFailure(new NvmlError('nvmlInit', code, nvml.errorString(code)));
  return { reading: new NvmlReading(nvml), shutdown: () => void nvml.shutdown() };
}

const opened = open();

port.on('message', (request: NvmlRequest) => {
  if (request.kind === 'close') {
    if (!('kind' in opened)) opened.shutdown();
    port.close();
    return;
  }
  let reply: NvmlReply;
  if ('kind' in opened) reply = { kind: 'failed', id: request.id, failure: opened };
  else {
    const started = performance.now();
    try {
      reply = {
        kind: 'reading',
        id: request.id,
        ...opened.reading.read(),
        nvmlMs: performance.now() - started,
      };
    } catch (error) {
      reply = { kind: 'failed', id: request.id, failure: nvmlFailure(error) };
    }
  }
  port.postMessage(reply);
});
