// Drive the service with the real Vercel AI SDK (`ai`, pinned in package-lock.json), as useChat would.
//
// Usage: node ui_chat.mjs <mode> <api url> [text]
//   chat    a headless Chat (AbstractChat: useChat's logic, no React) sends one message
//   strict  the transport and readUIMessageStream with terminateOnError: any protocol slip throws
//   resume  reconnectToStream(chatId): what useChat({resume: true}) does on page load
//   cut     a Chat sends a message, stop()s it once text has arrived, then resumeStream()s it
//   approve a Chat that sends automatically once approvals are answered
//           (lastAssistantMessageIsCompleteWithApprovalResponses) sends a message, then approves
//           every tool call that asks for approval (addToolApprovalResponse); deny: denies them
// Env: AI_PACKAGE (the SDK to import: "ai", major 6, default; "ai7", major 7), APPROVAL_WAIT_MS (default 10000),
//      CHAT_ID (default "chat-node"), API_KEY (sent as a bearer token), TIMEOUT_MS (default 20000),
//      RESUME_API (resume from this URL instead: another instance, say),
//      KEEP_COOKIES=1 (keep the cookies the service sets and send them back, as a browser does;
//      Node's fetch keeps none).
// Prints one JSON object on stdout; exits 1 on an error the SDK raised.
const sdk = await import(process.env.AI_PACKAGE ?? 'ai');
const { AbstractChat, DefaultChatTransport, readUIMessageStream, lastAssistantMessageIsCompleteWithApprovalResponses } = sdk;

const [mode, api, text = 'What is the weather in Paris?'] = process.argv.slice(2);
const chatId = process.env.CHAT_ID ?? 'chat-node';
const headers = process.env.API_KEY ? { authorization: `Bearer ${process.env.API_KEY}` } : {};
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 20000);
setTimeout(() => { console.log(JSON.stringify({ error: `timed out after ${timeoutMs} ms` })); process.exit(2); }, timeoutMs).unref();

class MemoryState {
  status = 'ready'; error = undefined; messages = [];
  pushMessage = m => { this.messages = this.messages.concat(m); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (i, m) => { this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]; };
  snapshot = v => structuredClone(v);
}

class NodeChat extends AbstractChat {
  constructor(init) { super({ ...init, state: new MemoryState() }); }
}

// A browser's cookie jar, reduced to what the service sets: name=value pairs, sent back on every request.
const jar = new Map();
async function fetchWithCookies(input, init = {}) {
  const sent = new Headers(init.headers);
  if (jar.size) sent.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const response = await fetch(input, { ...init, headers: sent });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }
  return response;
}

const resumeApi = process.env.RESUME_API;
const transport = new DefaultChatTransport({
  api, headers,
  ...(process.env.KEEP_COOKIES === '1' ? { fetch: fetchWithCookies } : {}),
  ...(resumeApi ? { prepareReconnectToStreamRequest: ({ id }) => ({ api: `${resumeApi}/${encodeURIComponent(id)}/stream`, headers }) } : {}),
});
const textOf = message => (message?.parts ?? []).filter(p => p.type === 'text').map(p => p.text).join('');
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function newChat(finished, extra = {}) {
  return new NodeChat({
    id: chatId, transport, ...extra,
    onFinish: info => finished.push({ isAbort: info.isAbort, isDisconnect: info.isDisconnect, isError: info.isError, finishReason: info.finishReason }),
  });
}

function report(chat, finished, extra = {}) {
  const last = chat.messages.at(-1);
  return { status: chat.status, error: chat.error?.message ?? null, finished, text: textOf(last), message: last, ...extra };
}

async function strict() {
  const stream = await transport.sendMessages({
    chatId, trigger: 'submit-message', messageId: undefined, abortSignal: undefined,
    messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text }] }],
  });
  const started = performance.now();
  let last, firstTextMs = null;
  for await (const message of readUIMessageStream({ stream, terminateOnError: true })) {
    last = message;
    if (firstTextMs === null && textOf(message)) firstTextMs = performance.now() - started;
  }
  return { text: textOf(last), message: last, firstTextMs, endMs: performance.now() - started };
}

async function resume() {
  const stream = await transport.reconnectToStream({ chatId });
  if (stream == null) return { resumed: false };
  let last;
  for await (const message of readUIMessageStream({ stream, terminateOnError: true })) last = message;
  return { resumed: true, text: textOf(last), message: last };
}

async function cut() {
  const finished = [];
  const chat = newChat(finished);
  const sending = chat.sendMessage({ text });
  let partial = '';
  for (let i = 0; i < 400 && !partial; i++) {  // bounded: at most 400 x 25 ms
    await sleep(25);
    const last = chat.messages.at(-1);
    if (last?.role === 'assistant') partial = textOf(last);
  }
  await chat.stop();
  await sending;
  const afterStop = { status: chat.status, text: textOf(chat.messages.at(-1)) };
  await chat.resumeStream();
  return report(chat, finished, { partial, afterStop, messageCount: chat.messages.length });
}

const toolParts = message => (message?.parts ?? []).filter(p => p.type.startsWith('tool-') || p.type === 'dynamic-tool');

async function approval(approved) {
  const finished = [];
  const chat = newChat(finished, { sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses });
  await chat.sendMessage({ text });
  const asked = toolParts(chat.messages.at(-1)).filter(p => p.state === 'approval-requested');
  const first = { status: chat.status, finished: finished.length, asked: asked.map(p => ({ type: p.type, toolCallId: p.toolCallId, approvalId: p.approval.id })) };
  for (const part of asked) {
    await chat.addToolApprovalResponse({ id: part.approval.id, approved, ...(approved ? {} : { reason: 'not today' }) });
  }
  // The answer goes out on its own (sendAutomaticallyWhen); wait for that request to end, at most APPROVAL_WAIT_MS.
  const rounds = Number(process.env.APPROVAL_WAIT_MS ?? 10000) / 25;
  for (let i = 0; i < rounds && !(asked.length && finished.length >= 2 && chat.status === 'ready'); i++) await sleep(25);
  const tools = toolParts(chat.messages.at(-1)).map(p => ({ type: p.type, toolCallId: p.toolCallId, state: p.state, output: p.output ?? null }));
  return report(chat, finished, { first, tools, messageCount: chat.messages.length, roles: chat.messages.map(m => m.role) });
}

async function main() {
  if (mode === 'approve' || mode === 'deny') return approval(mode === 'approve');
  if (mode === 'chat') {
    const finished = [];
    const chat = newChat(finished);
    await chat.sendMessage({ text });
    return report(chat, finished);
  }
  if (mode === 'strict') return strict();
  if (mode === 'resume') return resume();
  if (mode === 'cut') return cut();
  throw new Error(`unknown mode ${mode}`);
}

try {
  console.log(JSON.stringify(await main()));
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ thrown: `${error?.name}: ${error?.message}` }));
  process.exit(1);
}
