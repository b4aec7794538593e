// Drive the Agent Server API with LangGraph's own JavaScript SDK (`@langchain/langgraph-sdk`, pinned in
// package-lock.json): the `Client` that useStream and every JS front-end use.
//
// Usage: node langgraph_client.mjs <api url>   (the API root, e.g. http://127.0.0.1:8000/langgraph)
//   1. creates a thread and streams a run on graph "agent" with streamMode ["messages-tuple", "values", "updates"]
//      and the prompt that makes the agent ask for approval before sending an email (phase "first");
//   2. resumes it with command {resume: {decisions: [{type: "approve"}]}} (phase "resume");
//   3. starts a background run (runs.create), joins its stream from the start (phase "join"),
//      then joins it again with Last-Event-ID set to one of its events (phase "rejoin"): only later events come back;
//   4. reads the thread's state (phase "state").
// Each stream part is printed as one JSON line: {phase, event, id, data}; each run's created metadata
// (what onRunCreated got from Content-Location) as {phase, event: "run_created", data}. The last line is
// {done: true, ...} on success, or {error: "..."} (exit 1) when the SDK threw.
// Env: API_KEY (sent as x-api-key), TIMEOUT_MS (default 30000), PROMPT (default the email prompt).
import { Client } from '@langchain/langgraph-sdk';

const [apiUrl] = process.argv.slice(2);
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 30000);
const prompt = process.env.PROMPT ?? 'please send email to bob about lunch';
setTimeout(() => { console.log(JSON.stringify({ error: `timed out after ${timeoutMs} ms` })); process.exit(2); }, timeoutMs).unref();

const client = new Client({ apiUrl, apiKey: process.env.API_KEY ?? null });
const print = line => console.log(JSON.stringify(line));

async function drain(phase, stream) {
  const parts = [];
  for await (const part of stream) {
    parts.push(part);
    print({ phase, event: part.event, id: part.id ?? null, data: part.data });
  }
  return parts;
}

try {
  const thread = await client.threads.create({ metadata: { client: 'langgraph-sdk-js' } });
  const threadId = thread.thread_id;
  print({ phase: 'thread', data: thread });
  const streamMode = ['messages-tuple', 'values', 'updates'];
  const created = {};
  const onRunCreated = phase => meta => { created[phase] = meta; print({ phase, event: 'run_created', data: meta }); };

  await drain('first', client.runs.stream(threadId, 'agent', {
    input: { messages: [{ role: 'user', content: prompt }] }, streamMode, onRunCreated: onRunCreated('first'),
  }));
  const paused = await client.threads.get(threadId);
  print({ phase: 'paused', data: { status: paused.status, interrupts: paused.interrupts } });

  await drain('resume', client.runs.stream(threadId, 'agent', {
    command: { resume: { decisions: [{ type: 'approve' }] } }, streamMode, onRunCreated: onRunCreated('resume'),
  }));

  const background = await client.runs.create(threadId, 'agent', {
    input: { messages: [{ role: 'user', content: 'what time is it' }] }, streamMode,
  });
  print({ phase: 'background', data: background });
  const joined = await drain('join', client.runs.joinStream(threadId, background.run_id, { lastEventId: '-1' }));
  const middle = joined.filter(part => part.id != null).at(Math.floor(joined.length / 2));
  await drain('rejoin', client.runs.joinStream(threadId, background.run_id, { lastEventId: middle.id }));
  print({ phase: 'rejoin_after', data: middle.id });

  const state = await client.threads.getState(threadId);
  print({ phase: 'state', data: state });
  const runs = await client.runs.list(threadId);
  print({ done: true, threadId, runs: runs.map(run => ({ run_id: run.run_id, status: run.status })), created });
} catch (error) {
  print({ error: String(error?.stack ?? error) });
  process.exit(1);
}
