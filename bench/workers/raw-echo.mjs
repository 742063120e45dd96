// The floor for processes: a bare child that echoes each IPC message (no framework at all).
process.on('message', (message) => process.send(message));
