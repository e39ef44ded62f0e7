// A stand-in model provider for the console's browser tests: an OpenAI-compatible /v1/chat/completions on
// loopback that answers as the test kit's model server does (testkit/src/model.rs, mode Canned): a plan is a
// JSON array, an answer cites the first two sources of its prompt. Every answer reports the same usage, so a
// task's cost is known, and comes after PADDOCK_MODEL_DELAY_MS, so a task's steps arrive one by one and a
// running task can be cancelled; five times that when the prompt says "(take your time)", so a page can be
// reloaded while its task runs. Prints its base URL on stdout.
import http from 'node:http';

const delay = Number(process.env.PADDOCK_MODEL_DELAY_MS ?? 400);
const usage = { prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200 };

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const request = JSON.parse(body);
    const [system, ...rest] = request.messages;
    const user = rest.map((m) => m.content).join('\n');
    let text;
    if (String(system.content).includes('JSON array')) {
      text = '["personal data erasure", "breach notification deadline"]';
    } else {
      const ids = user.split('\n').filter((l) => l.startsWith('[') && l.includes(']'))
        .map((l) => l.slice(1, l.indexOf(']')));
      const cite = (i) => (ids[i] ? ` [${ids[i]}]` : '');
      text = `## Findings\n\nData must be erased without undue delay${cite(0)}. Breaches are notified within 72 hours${cite(1)}.`;
    }
    // A question asking for patience makes a slow model: its task runs long enough to reload the page midway.
    const wait = (system.content + user).includes('(take your time)') ? delay * 5 : delay;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'cmpl-console', object: 'chat.completion', model: request.model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage,
      }));
    }, wait);
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}/v1`);
});
