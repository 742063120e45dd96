import { duration, facts } from './format.js';

function gpuText(snapshot, info) {
  const devices = snapshot.gpu?.devices ?? [];
  if (devices.length > 0) return devices.map((d) => `${d.index}: ${d.name}`).join(', ');
  const cpuOnly = info.executionProviders.every((ep) => ep.toLowerCase() === 'cpu');
  return cpuOnly ? 'no GPU (CPU execution provider)' : 'no GPU measured';
}

export function renderHeader(dl, info, snapshot) {
  const ready = snapshot.readiness;
  const readiness = ready.ready
    ? { text: `ready (${ready.body.workers.serving}/${ready.body.workers.total} serving)`, class: 'good' }
    : { text: `unavailable: ${ready.body.reason}`, class: 'bad' };
  facts(dl, [
    ['pid', info.pid],
    ['uptime', duration(snapshot.supervisor.uptimeMs)],
    ['version', info.version],
    ['backend', info.backend],
    ['execution providers', info.executionProviders.join(', ')],
    ['GPU', gpuText(snapshot, info), 'gpu'],
    ['readiness', readiness],
    [
      'degraded',
      snapshot.degraded ? { text: `yes: ${snapshot.degraded}`, class: 'bad' } : { text: 'no', class: 'good' },
    ],
  ]);
}
