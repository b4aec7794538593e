// A tiny React page on LangGraph's own useStream (`@langchain/langgraph-sdk/react`, pinned in package-lock.json),
// bundled by esbuild at test time (tests/js/bundle.mjs) and opened in Chromium by tests/e2e/test_agent_server_js.py.
//
// The page's URL names the API root: index.html?api=http://127.0.0.1:PORT/langgraph. The thread id is kept in
// sessionStorage (as an app would keep it in its URL or router), so a reload shows the same thread;
// reconnectOnMount: true makes useStream keep the running run's id in sessionStorage too, and join that run's
// stream again after the reload. Everything the test reads is in the DOM, or in window.__renders: every distinct
// text of the last AI message this page load rendered, in order (to tell a streamed answer from one read whole,
// and to see a token repeated or missing).
import { useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useStream } from '@langchain/langgraph-sdk/react';

const apiUrl = new URLSearchParams(window.location.search).get('api');
const THREAD_KEY = 'use-stream-demo:thread';
window.__renders = [];
window.__errors = [];

function textOf(message) {
  if (typeof message.content === 'string') return message.content;
  return (message.content ?? []).filter(part => part?.type === 'text').map(part => part.text).join('');
}

function App() {
  const [threadId, setThreadId] = useState(() => window.sessionStorage.getItem(THREAD_KEY));
  const [prompt, setPrompt] = useState('');
  const stream = useStream({
    apiUrl,
    assistantId: 'agent',
    messagesKey: 'messages',
    threadId,
    onThreadId: id => { window.sessionStorage.setItem(THREAD_KEY, id); setThreadId(id); },
    reconnectOnMount: true,
    onError: error => { window.__errors.push(String(error?.message ?? error)); },
  });
  const messages = stream.messages;
  const lastAi = [...messages].reverse().find(m => m.type === 'ai');
  const aiText = lastAi ? textOf(lastAi) : '';
  const renders = window.__renders;
  if (aiText && renders[renders.length - 1] !== aiText) renders.push(aiText);
  const interrupt = stream.interrupt;
  const requests = interrupt?.value?.action_requests ?? [];

  const send = event => {
    event.preventDefault();
    stream.submit({ messages: [{ type: 'human', content: prompt }] });
  };
  const approve = () => stream.submit(undefined, { command: { resume: { decisions: [{ type: 'approve' }] } } });

  return (
    <main>
      <form onSubmit={send}>
        <input id="prompt" value={prompt} onChange={event => setPrompt(event.target.value)} />
        <button id="send" type="submit">Send</button>
      </form>
      <p id="status" data-loading={String(stream.isLoading)} data-thread={threadId ?? ''}>
        {stream.isLoading ? 'streaming' : 'idle'}
      </p>
      <p id="error">{stream.error ? String(stream.error?.message ?? stream.error) : ''}</p>
      <ol id="messages">
        {messages.map((m, i) => (
          <li key={m.id ?? i} className="message" data-type={m.type} data-id={m.id ?? ''}>{textOf(m)}</li>
        ))}
      </ol>
      <p id="answer">{aiText}</p>
      {interrupt && (
        <section id="interrupt" data-id={interrupt.id ?? ''}>
          {requests.map((request, i) => <p key={i} className="action" data-name={request.name}>{request.name}: {JSON.stringify(request.args)}</p>)}
          <button id="approve" onClick={approve}>Approve</button>
        </section>
      )}
    </main>
  );
}

createRoot(document.getElementById('root')).render(<App />);
