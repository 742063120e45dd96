// The console's calls to the supervisor. The session cookie goes along by itself (same origin); the
// JSON content type is what makes an action impossible to forge from another site's form.

async function answerOf(response) {
  const text = await response.text();
  const body = text === '' ? {} : JSON.parse(text);
  if (!response.ok) {
    const message = body?.error?.message ?? `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status, code: body?.error?.code });
  }
  return body;
}

export async function getJson(path) {
  return answerOf(await fetch(path, { credentials: 'same-origin', cache: 'no-store' }));
}

function post(path, body) {
  return fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export async function admin(command, args = {}) {
  return answerOf(await post(`/admin/${command}`, args));
}

export async function login(token) {
  return answerOf(await post('/login', { token }));
}

export async function logout() {
  return answerOf(await post('/logout', {}));
}
