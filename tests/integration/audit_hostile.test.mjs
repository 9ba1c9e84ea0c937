// audit_hostile.test.mjs: a hostile HTTP client against SPEC §8 ("no client, however many
// connections it opens, can stop the service for others") and the README's "Requests are read
// strictly" and API sections: every bad input gets a JSON error of the documented shape with a
// Request-Id, and changes nothing (checked with a read afterwards). Raw sockets on 127.0.0.1;
// every wait is bounded. edge.test.mjs and cors.test.mjs cover what is not repeated here.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { logged, SERVICE_KEY, startServer, stopServer, userToken } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const AUTH = `Authorization: Bearer ${SERVICE_KEY}\r\n`;

// Sends raw bytes on a fresh connection; resolves to what came back until the server closed,
// with '<timeout>' appended when it had not closed after ms.
function exchange(port, bytes, ms = 3000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from(bytes, 'latin1')));
    const chunks = [];
    const t = setTimeout(() => { s.destroy(); resolve(`${Buffer.concat(chunks).toString('latin1')}<timeout>`); }, ms);
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(chunks).toString('latin1')); });
    s.on('error', () => {});
  });
}

// The answers in a byte stream: [{ status, headers (lower-case names), body }], bodies cut by
// Content-Length.
function parseAnswers(raw) {
  const out = [];
  let rest = raw;
  while (rest.startsWith('HTTP/1.')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [line, ...lines] = rest.slice(0, end).split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] || 0);
    out.push({ status: Number(line.split(' ')[1]), line, headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

// Exactly one answer, with status, a Request-Id and the Stripe-shaped JSON error; its error.
function oneJsonError(raw, status) {
  const answers = parseAnswers(raw);
  assert.equal(answers.length, 1, raw);
  const [a] = answers;
  assert.equal(a.status, status, raw);
  assert.match(a.headers['request-id'] || '', /^req_[0-9a-f]{16}$/, `Request-Id in ${raw}`);
  assert.match(a.headers['content-type'] || '', /^application\/json/);
  const { error } = JSON.parse(a.body);
  for (const k of ['type', 'code', 'message']) assert.equal(typeof error[k], 'string', raw);
  return error;
}

const consumeBody = (user) => JSON.stringify({ user_id: user, quota: 'ai_minutes', amount: 1 });
// A POST with the service key; its Content-Length unless framed otherwise in extra.
const post = (path, body, extra = '', { close = true } = {}) => {
  const length = /Transfer-Encoding|Content-Length/i.test(extra) ? '' : `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n`;
  return `POST ${path} HTTP/1.1\r\nHost: x\r\n${AUTH}${close ? 'Connection: close\r\n' : ''}${length}${extra}\r\n${body}`;
};

let srv;
before(async () => { srv = await startServer({ MAX_BODY_BYTES: '4096' }); });
after(async () => { await stopServer(srv); });

// What user has used of ai_minutes, read over HTTP: the "nothing changed" check.
async function used(user) {
  const r = await fetch(`${srv.base}/api/v1/access/usage?user_id=${user}`, { headers: { authorization: `Bearer ${SERVICE_KEY}` } });
  assert.equal(r.status, 200);
  return (await r.json()).quotas.ai_minutes.used;
}

describe('body framing (RFC 9112 section 6)', () => {
  // Seen failing on main: the library reads a body of an unknown coding until the client
  // closes, so no answer came within 3 s ('<timeout>'), only 'closed with incomplete request'.
  for (const te of ['gzip', 'identity', 'gzip, chunked']) {
    test(`Transfer-Encoding: ${te} is answered 400 at once and nothing is consumed`, async () => {
      const raw = await exchange(srv.port, post('/api/v1/access/consume', consumeBody('te_user'),
        `Content-Type: application/json\r\nTransfer-Encoding: ${te}\r\n`));
      assert.ok(!raw.endsWith('<timeout>'), `answered and closed: ${raw}`);
      assert.match(oneJsonError(raw, 400).message, /Transfer-Encoding/);
      assert.equal(await used('te_user'), 0);
    });
  }

  // Seen failing on main: a 200 consume (the chunked body was taken) on a connection that
  // stayed open and answered the next request, where a proxy that framed by Content-Length
  // would have read the rest as a request of its own.
  test('Transfer-Encoding: chunked beside Content-Length is answered 400 and nothing is consumed', async () => {
    const body = consumeBody('smuggle');
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const raw = await exchange(srv.port, `POST /api/v1/access/consume HTTP/1.1\r\nHost: x\r\n${AUTH}`
      + `Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`
      + 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(!raw.endsWith('<timeout>'), raw);
    assert.match(oneJsonError(raw, 400).message, /both Transfer-Encoding and Content-Length/);
    assert.equal(await used('smuggle'), 0);
  });

  test('a chunked body alone, with an extension and a trailer, is still taken', async () => {
    const body = consumeBody('chunky');
    const raw = await exchange(srv.port, `POST /api/v1/access/consume HTTP/1.1\r\nHost: x\r\n${AUTH}`
      + 'Content-Type: application/json\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n'
      + `${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nX-Trailer: 1\r\n\r\n`);
    assert.equal(parseAnswers(raw)[0]?.status, 200, raw);
    assert.equal(await used('chunky'), 1);
  });

  // Seen failing on main: the 400 that server.c writes by hand for the library had no
  // Request-Id (README: "Every answer carries a Request-Id header") and no access-log line.
  test('a malformed Content-Length is answered with a Request-Id, logged under that id', async () => {
    for (const cl of ['-1', '+2', 'abc']) {
      const raw = await exchange(srv.port, `POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\nConnection: close\r\n\r\n`);
      oneJsonError(raw, 400);
      const id = parseAnswers(raw)[0].headers['request-id'];
      assert.ok(await logged(srv, new RegExp(`"request_id":"${id}".*"status":400`)), `log line of ${id}`);
    }
  });
});

describe('query strings', () => {
  // Seen failing on main: 200 for user "a" (the first value taken, silently); a proxy or WAF
  // in front that checks the last value would have let the caller read another user.
  test('a parameter given twice is refused, not the first taken', async () => {
    const token = userToken('dup_user');
    for (const [path, auth, param] of [
      ['/api/v1/access/usage?user_id=a&user_id=b', AUTH, 'user_id'],
      ['/api/v1/payments/invoices?limit=1&limit=500', `Authorization: Bearer ${token}\r\n`, 'limit'],
      ['/api/v1/access/ledger?user_id=a&limit=2&limit=3', AUTH, 'limit'],
    ]) {
      const raw = await exchange(srv.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`);
      const e = oneJsonError(raw, 400);
      assert.equal(e.param, param, raw);
    }
    const raw = await exchange(srv.port, `POST /api/v1/payments/cancel-subscription?immediate=false&immediate=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    assert.equal(oneJsonError(raw, 400).param, 'immediate');
  });

  // Seen failing on main: 300 parameters (a 2 KiB target, far under the 15 KiB head the
  // README promises to read) closed the connection with no answer at all (''), each parameter
  // taking a record from the library's 16 KiB pool until it was full; 100 were served.
  test('a query of more than 64 parameters is answered 400 once, first or later on a connection', async () => {
    const q = (n) => Array.from({ length: n }, (_, i) => `p${i}=${i}`).join('&');
    const ok = await exchange(srv.port, `GET /healthz?${q(64)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(parseAnswers(ok)[0]?.status, 200, ok);
    for (const n of [65, 300, 1000]) {
      const raw = await exchange(srv.port, `GET /api/v1/access/usage?user_id=a&${q(n)} HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
      assert.match(oneJsonError(raw, 400).message, /more than 64 parameters/, `${n} parameters`);
    }
    const later = await exchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz?${q(300)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const answers = parseAnswers(later);
    assert.deepEqual(answers.map((a) => a.status), [200, 400], later);
    assert.match(answers[1].headers['request-id'] || '', /^req_[0-9a-f]{16}$/);
    assert.ok(!later.endsWith('<timeout>'), 'closed after the 400');
  });

  test('non-UTF-8 and overlong percent-encodings are refused with JSON', async () => {
    for (const q of ['%ff', '%c0%af', '%e0%80%af', '%ed%a0%80']) {
      const raw = await exchange(srv.port, `GET /api/v1/access/usage?user_id=${q} HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
      assert.equal(oneJsonError(raw, 400).code, 'parameter_invalid', q);
    }
  });
});

describe('JSON bodies', () => {
  // Seen failing on main: 200, a unit consumed, for a body its client said was UTF-16.
  test('a charset other than UTF-8 is refused 415 with nothing consumed; utf-8 in any spelling is taken', async () => {
    for (const ct of ['application/json; charset=utf-16', 'application/json;charset=latin1', 'application/json; charset="iso-8859-1"']) {
      const raw = await exchange(srv.port, post('/api/v1/access/consume', consumeBody('cs_user'), `Content-Type: ${ct}\r\n`));
      assert.equal(oneJsonError(raw, 415).code, 'unsupported_media_type', ct);
    }
    assert.equal(await used('cs_user'), 0);
    for (const ct of ['application/json; charset=UTF-8', 'Application/JSON ; Charset="utf-8"', 'application/json; foo=bar']) {
      const raw = await exchange(srv.port, post('/api/v1/access/consume', consumeBody('cs_user'), `Content-Type: ${ct}\r\n`));
      assert.equal(parseAnswers(raw)[0]?.status, 200, `${ct}: ${raw}`);
    }
    assert.equal(await used('cs_user'), 3);
  });

  test('bodies that are not the object asked for: 400 or 413 with a JSON error, nothing consumed', async () => {
    const bodies = [
      ['[]', 400], ['"x"', 400], ['null', 400], ['', 400], ['{', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":9223372036854775808}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":1e400}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":1.0}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":-0}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":1e2}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":"1"}', 400],
      ['{"user_id":"jb\\u0000","quota":"ai_minutes","amount":1}', 400],
      ['{"user_id":"jb\xff","quota":"ai_minutes","amount":1}', 400],
      ['{"user_id":"jb\\ud800","quota":"ai_minutes","amount":1}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":1,"amount":1}', 400],
      ['{"user_id":"jb","quota":"ai_minutes","amount":1}{}', 400],
      ['\xef\xbb\xbf{"user_id":"jb","quota":"ai_minutes","amount":1}', 400],
      [`${'['.repeat(3000)}${']'.repeat(3000)}`, 413],
      [`${'{"a":'.repeat(500)}1${'}'.repeat(500)}`, 400],
    ];
    for (const [body, status] of bodies) {
      const raw = await exchange(srv.port, post('/api/v1/access/consume', body, 'Content-Type: application/json\r\n'));
      oneJsonError(raw, status);
    }
    assert.equal(await used('jb'), 0);
  });
});

describe('request lines and methods', () => {
  // Seen failing on main: 200, where HTTP/1.1 without Host is 400 (README); the library takes
  // HTTP/1.2 as 1.1, the head check looked for "HTTP/1.1" only.
  test('HTTP/1.2 without Host is refused like HTTP/1.1; HTTP/1.0 without it is served', async () => {
    assert.match(oneJsonError(await exchange(srv.port, 'GET /healthz HTTP/1.2\r\nConnection: close\r\n\r\n'), 400).message, /Host/);
    assert.equal(parseAnswers(await exchange(srv.port, 'GET /healthz HTTP/1.0\r\n\r\n'))[0]?.status, 200);
  });

  test('methods the route does not serve: 405 with Allow and a JSON error; unknown targets 404', async () => {
    for (const m of ['TRACE', 'PROPFIND', 'get', 'DELETE']) {
      const raw = await exchange(srv.port, `${m} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(oneJsonError(raw, 405).code, 'method_not_allowed', m);
      assert.equal(parseAnswers(raw)[0].headers.allow, 'GET, HEAD');
    }
    for (const line of ['CONNECT x:443 HTTP/1.1', 'GET http://evil.example/healthz HTTP/1.1', 'OPTIONS * HTTP/1.1', 'GET /api/v1/../../healthz HTTP/1.1']) {
      oneJsonError(await exchange(srv.port, `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`), 404);
    }
  });

  test('a request pipelined after a POST body is answered in order on the same connection', async () => {
    const body = consumeBody('pipe');
    const raw = await exchange(srv.port, post('/api/v1/access/consume', body, 'Content-Type: application/json\r\n', { close: false })
      + `GET /api/v1/access/usage?user_id=pipe HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
    const answers = parseAnswers(raw);
    assert.deepEqual(answers.map((a) => a.status), [200, 200], raw);
    assert.equal(JSON.parse(answers[1].body).quotas.ai_minutes.used, 1);
  });
});

describe('hostile connections do not stop the service for others', () => {
  // One GET on a fresh connection; resolves to its status line, or rejects after ms.
  const get = (path, ms = 3000) => new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`));
    let data = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error(`no answer to ${path} within ${ms} ms`)); }, ms);
    s.on('data', (d) => { data += d; });
    s.on('close', () => { clearTimeout(t); resolve(data.split('\r\n')[0]); });
    s.on('error', () => {});
  });

  test('clients that pipeline large answers and never read, reset at once, or dribble bodies', { timeout: 30000 }, async () => {
    const socks = [];
    try {
      // 20 clients that ask for the OpenAPI document 200 times each and never read.
      for (let i = 0; i < 20; i++) {
        const s = net.connect(srv.port, '127.0.0.1', () => {
          s.write('GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
        });
        s.on('error', () => {});
        s.pause();
        socks.push(s);
      }
      // 100 POSTs that announce 4,000 bytes and send one a second.
      for (let i = 0; i < 100; i++) {
        const s = net.connect(srv.port, '127.0.0.1', () => s.write(`POST /api/v1/access/consume HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{`));
        s.on('error', () => {});
        socks.push(s);
      }
      const drip = setInterval(() => { for (const s of socks.slice(20)) s.write(' '); }, 1000);
      try {
        // 500 connections reset as soon as they are open.
        for (let r = 0; r < 5; r++) {
          await Promise.all(Array.from({ length: 100 }, () => new Promise((resolve) => {
            const s = net.connect(srv.port, '127.0.0.1', () => { s.resetAndDestroy(); resolve(); });
            s.on('error', resolve);
          })));
        }
        await sleep(500);
        assert.equal(await get('/healthz'), 'HTTP/1.1 200 OK');
        assert.equal(await get('/api/v1/access/usage?user_id=calm'), 'HTTP/1.1 200 OK');
        assert.equal(await get('/openapi.json'), 'HTTP/1.1 200 OK');
      } finally { clearInterval(drip); }
    } finally {
      for (const s of socks) s.destroy();
    }
    assert.equal(await get('/healthz'), 'HTTP/1.1 200 OK');
    assert.equal(await used('calm'), 0);
  });
});
