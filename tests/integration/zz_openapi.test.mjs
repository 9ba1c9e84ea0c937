// zz_openapi.test.mjs: docs/openapi.json holds true (issue #12 item 3). It is a valid OpenAPI
// 3.1 document (the 3.1 meta-schema, by @seriousme/openapi-schema-validator); the binary serves
// it unchanged at GET /openapi.json; its operations are exactly the route table's (read from the
// binary's /metrics, which names every route); and every answer the rest of the suite received
// (recorded by lib.mjs when SUBGATE_OPENAPI_LOG is set, as scripts/test.sh does) matches it:
// a documented operation and status, a documented media type, the body valid against the
// schema (Ajv, JSON Schema 2020-12) and the documented headers (a HEAD: its path's GET operation's
// status and headers, and no body). A path or method the document
// does not list must be answered as its x-subgate-unmatched says. Named zz_ so that node --test
// runs it after the files whose answers it checks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import { OPENAPI_LOG, startServer, stopServer } from './lib.mjs';

const DOC_FILE = path.resolve('docs/openapi.json');
const DOC_TEXT = fs.readFileSync(DOC_FILE, 'utf8');
const DOC = JSON.parse(DOC_TEXT);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// JSON pointer escaping of one path segment.
const esc = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');

// Follows a local $ref; returns { node, pointer } of what it names.
function deref(node, pointer) {
  while (node && node.$ref) {
    assert.match(node.$ref, /^#\//, `only local $refs: ${node.$ref}`);
    pointer = node.$ref.slice(1);
    node = pointer.split('/').slice(1).reduce((o, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], DOC);
    assert.ok(node, `unresolved $ref ${pointer}`);
  }
  return { node, pointer };
}

// The document's operations other than CORS preflights: "METHOD /path".
function documentedRoutes() {
  const out = [];
  for (const [p, item] of Object.entries(DOC.paths))
    for (const m of METHODS) if (item[m] && m !== 'options') out.push(`${m.toUpperCase()} ${p}`);
  return out.sort();
}

// Ajv over the whole document, so schemas are compiled by JSON pointer and their $refs resolve.
// strict is off only because the document's other keywords (openapi, paths...) are not JSON
// Schema; the schemas themselves are checked by the meta-schema validation above.
function makeAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema(DOC, 'openapi.json');
  const cache = new Map();
  return (pointer) => {
    if (!cache.has(pointer)) {
      const v = ajv.getSchema(`openapi.json#${pointer}`);
      assert.ok(v, `no schema at ${pointer}`);
      cache.set(pointer, v);
    }
    return cache.get(pointer);
  };
}

// The documented response for a recorded answer: { response, pointer, where } or an error text.
// The documented operation an answer belongs to: its method's, or for a HEAD the path's GET
// (HEAD is answered as GET without the body; the document says so and lists HEAD only where a
// route of its own serves it). { op, method } or undefined.
function operationFor(a) {
  const item = DOC.paths[a.path];
  const m = a.method.toLowerCase();
  if (item?.[m]) return { op: item[m], method: m };
  if (m === 'head' && item?.get) return { op: item.get, method: 'get' };
  return undefined;
}

function responseFor(a) {
  const found = operationFor(a);
  let responses;
  let base;
  let where;
  if (found) {
    responses = found.op.responses;
    base = `/paths/${esc(a.path)}/${found.method}/responses`;
    where = `${a.method} ${a.path}`;
  } else {
    responses = DOC['x-subgate-unmatched'];
    base = '/x-subgate-unmatched';
    where = `unmatched ${a.method} ${a.path}`;
  }
  const key = [String(a.status), `${String(a.status)[0]}XX`, 'default'].find((k) => responses[k]);
  if (!key) return { error: `${where}: status ${a.status} is not documented (documented: ${Object.keys(responses).join(', ')})` };
  const { node, pointer } = deref(responses[key], `${base}/${esc(key)}`);
  return { response: node, pointer, where: `${where} ${a.status}` };
}

// The failures of one recorded answer against its documented response.
function check(a, schemaAt) {
  const found = responseFor(a);
  if (found.error) return [found.error];
  const { response, pointer, where } = found;
  const fails = [];
  const headers = Object.fromEntries(Object.entries(a.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [name, h0] of Object.entries(response.headers || {})) {
    const { node: h, pointer: hp } = deref(h0, `${pointer}/headers/${esc(name)}`);
    const v = headers[name.toLowerCase()];
    if (v === undefined) {
      if (h.required) fails.push(`${where}: header ${name} is required and missing`);
      continue;
    }
    const validate = schemaAt(`${hp}/schema`);
    if (!validate(v)) fails.push(`${where}: header ${name}: ${JSON.stringify(v)} ${JSON.stringify(validate.errors)}`);
  }
  if (a.method === 'HEAD') {
    if (a.body) fails.push(`${where}: a HEAD answer with a body: ${JSON.stringify(a.body.slice(0, 200))}`);
    return fails; // the head of the documented answer: status and headers, no body
  }
  const content = response.content;
  if (!content) {
    if (a.body) fails.push(`${where}: documented without a body, got ${JSON.stringify(a.body.slice(0, 200))}`);
    return fails;
  }
  const media = (a.contentType || '').split(';')[0].trim().toLowerCase();
  if (!content[media]) return [...fails, `${where}: content type ${a.contentType} is not documented (${Object.keys(content).join(', ')})`];
  if (a.bodyError) return [...fails, `${where}: the body could not be read: ${a.bodyError}`];
  if (media !== 'application/json') return fails;
  let body;
  try { body = JSON.parse(a.body); } catch { return [...fails, `${where}: the body is not JSON: ${String(a.body).slice(0, 200)}`]; }
  const validate = schemaAt(`${pointer}/content/${esc(media)}/schema`);
  if (!validate(body)) {
    const errs = validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
    fails.push(`${where}: body ${JSON.stringify(body).slice(0, 300)}: ${errs.slice(0, 4).join('; ')}`);
  }
  return fails;
}

describe('the OpenAPI document', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await stopServer(srv); });

  test('is a valid OpenAPI 3.1 document', async () => {
    const v = new Validator();
    const r = await v.validate(structuredClone(DOC));
    assert.equal(v.version, '3.1');
    assert.ok(r.valid, JSON.stringify(r.errors, null, 1)?.slice(0, 3000));
  });

  test('every schema compiles under JSON Schema 2020-12, strictly (no unknown keyword)', () => {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    const text = JSON.stringify({ $id: 'schemas', $defs: DOC.components.schemas });
    const root = JSON.parse(text.replaceAll('"#/components/schemas/', '"#/$defs/'));
    ajv.addSchema(root);
    for (const name of Object.keys(DOC.components.schemas)) assert.ok(ajv.getSchema(`schemas#/$defs/${name}`), name);
  });

  test('is served at GET /openapi.json, unchanged, with a strong ETag', async () => {
    const r = await fetch(`${srv.base}/openapi.json`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(await r.text(), DOC_TEXT, 'the binary serves docs/openapi.json as built: rebuild after editing it');
    const etag = r.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    const again = await fetch(`${srv.base}/openapi.json`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
    const other = await fetch(`${srv.base}/openapi.json`, { headers: { 'if-none-match': '"0"' } });
    assert.equal(other.status, 200);
  });

  test('lists exactly the routes of the route table, both ways', async () => {
    const text = await (await fetch(`${srv.base}/metrics`)).text();
    const table = [...text.matchAll(/^subgate_http_request_duration_seconds_count\{route="([^"]+)"\}/gm)]
      .map((m) => m[1]).filter((r) => r !== 'unmatched').sort();
    assert.ok(table.length >= 20, `the binary names its routes in /metrics: ${table.length}`);
    const doc = documentedRoutes();
    assert.deepEqual(table.filter((r) => !doc.includes(r)), [], 'routes missing from docs/openapi.json');
    assert.deepEqual(doc.filter((r) => !table.includes(r)), [], 'operations in docs/openapi.json that the binary has no route for');
  });

  test('every 4xx and 5xx it documents is the shared error shape', () => {
    for (const [p, item] of Object.entries(DOC.paths)) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        for (const [status, r0] of Object.entries(item[m].responses)) {
          if (!/^[45]/.test(status) || (p === '/api/v1/access/gate')) continue;
          const { node } = deref(r0, '');
          const schema = node.content?.['application/json']?.schema?.$ref;
          assert.ok(['#/components/schemas/Error', '#/components/schemas/QuotaError'].includes(schema), `${m} ${p} ${status}: ${schema}`);
        }
      }
    }
  });
});

describe('every answer the suite received', () => {
  test('matches the document', (t) => {
    if (!OPENAPI_LOG) {
      t.skip('SUBGATE_OPENAPI_LOG is not set: no answers were recorded, so none were checked (scripts/test.sh sets it)');
      return;
    }
    assert.ok(fs.existsSync(OPENAPI_LOG), `SUBGATE_OPENAPI_LOG=${OPENAPI_LOG} names no file: nothing was recorded`);
    const answers = fs.readFileSync(OPENAPI_LOG, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(answers.length > 0, 'no answer was recorded');
    const schemaAt = makeAjv();
    const failures = new Map(); // failure text -> the test files that saw it
    const seen = new Set();
    let unmatched = 0;
    for (const a of answers) {
      if (!operationFor(a)) unmatched++;
      else seen.add(`${a.method} ${a.path} ${a.status}`);
      for (const f of check(a, schemaAt)) {
        if (!failures.has(f)) failures.set(f, new Set());
        failures.get(f).add(a.file);
      }
    }
    t.diagnostic(`${answers.length} answers validated (${unmatched} to undocumented paths or methods), ${seen.size} operation/status pairs seen`);
    const list = [...failures].map(([f, files]) => `${f} [${[...files].join(', ')}]`);
    assert.equal(list.length, 0, `${list.length} answer(s) do not match docs/openapi.json:\n${list.slice(0, 40).join('\n')}`);
  });
});
