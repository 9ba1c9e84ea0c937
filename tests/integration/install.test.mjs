// install.test.mjs: installs like a service (#16 item 5). `make install` into a temporary
// DESTDIR, then: the installed binary answers --help and serves /healthz with the installed
// example environment file (plus a secret) on SQLite; the man page renders without a groff
// warning and documents every command; the unit passes `systemd-analyze verify` without a word
// (its ExecStart pointed at the staged binary, MANPATH at the staged page); `make uninstall`
// removes it all.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { assertNoSanitizerReport, BIN, freePort, tmpDir } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The build the suite runs (build/release or build/asan) is the one installed.
const B = path.relative(ROOT, path.dirname(BIN));
const FLAVOR = path.basename(B);

function make(target, vars) {
  const args = ['-s', target, `B=${B}`, `FLAVOR=${FLAVOR}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)];
  const r = spawnSync('make', args, { cwd: ROOT, encoding: 'utf8', timeout: 300000 });
  assert.equal(r.status, 0, `make ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r;
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

describe('make install into a DESTDIR (PREFIX /usr/local)', () => {
  let dest;
  const P = '/usr/local';
  const at = (p) => path.join(dest, p);
  before(() => {
    dest = tmpDir();
    make('install', { DESTDIR: dest });
  });

  test('installs the binary, the unit, the man page and the example environment file', () => {
    const want = {
      [`${P}/bin/subgate`]: 0o755,
      [`${P}/lib/systemd/system/subgate.service`]: 0o644,
      [`${P}/share/man/man8/subgate.8`]: 0o644,
      [`${P}/share/doc/subgate/subgate.env.example`]: 0o644,
    };
    for (const [p, mode] of Object.entries(want)) {
      const st = fs.statSync(at(p));
      assert.ok(st.isFile(), p);
      assert.equal(st.mode & 0o777, mode, p);
    }
    const unit = fs.readFileSync(at(`${P}/lib/systemd/system/subgate.service`), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/subgate serve$/m);
    assert.match(unit, /^EnvironmentFile=\/etc\/subgate\/subgate\.env$/m);
    assert.match(unit, /^Environment=DATABASE_URL=sqlite:\/var\/lib\/subgate\/subgate\.db$/m);
    for (const line of ['DynamicUser=yes', 'StateDirectory=subgate', 'ProtectSystem=strict', 'PrivateTmp=yes',
      'ProtectHome=yes', 'NoNewPrivileges=yes', 'ProtectKernelTunables=yes', 'ProtectControlGroups=yes',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'LockPersonality=yes', 'MemoryDenyWriteExecute=yes',
      'SystemCallFilter=@system-service', 'CapabilityBoundingSet=', 'Restart=on-failure']) {
      assert.ok(unit.split('\n').includes(line), `the unit lacks ${line}`);
    }
    assert.doesNotMatch(unit + fs.readFileSync(at(`${P}/share/man/man8/subgate.8`), 'utf8'), /@[A-Z_]+@/);
  });

  test('the installed binary prints its usage', () => {
    const r = sh(at(`${P}/bin/subgate`), ['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: subgate COMMAND/);
  });

  test('the installed binary serves /healthz with the example environment file and a secret', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const example = fs.readFileSync(at(`${P}/share/doc/subgate/subgate.env.example`), 'utf8');
    fs.writeFileSync(path.join(dir, '.env'), `${example}\nJWT_SECRET=${'s'.repeat(40)}\n`);
    const child = spawn(at(`${P}/bin/subgate`), ['serve'], {
      cwd: dir,
      env: { PATH: process.env.PATH, DATABASE_URL: `sqlite:${dir}/state.db`, LISTEN: `127.0.0.1:${port}`, HTTP_THREADS: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d) => { log += d; });
    child.stderr.on('data', (d) => { log += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let health = null;
    for (let i = 0; i < 300 && !health; i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        health = { status: r.status, body: await r.json() };
      } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
    child.kill('SIGTERM');
    const end = await exited;
    assertNoSanitizerReport(log);
    assert.deepEqual(health, { status: 200, body: { status: 'ok' } }, log);
    assert.deepEqual(end, { code: 0, signal: null }, log);
    assert.ok(fs.existsSync(`${dir}/state.db`));
  });

  test('the man page renders without a warning and has every section and command', () => {
    const page = at(`${P}/share/man/man8/subgate.8`);
    const check = sh('groff', ['-man', '-Tutf8', '-ww', '-z', page]);
    assert.equal(check.status, 0, check.stderr);
    assert.equal(check.stderr, '', 'groff warned');
    const text = sh('groff', ['-man', '-Tutf8', '-ww', '-P-c', '-P-b', '-P-u', page]).stdout;
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'ENVIRONMENT', 'FILES', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO']) {
      assert.match(text, new RegExp(`^${s}$`, 'm'), s);
    }
    const commands = text.slice(text.indexOf('\nCOMMANDS'), text.indexOf('\nENVIRONMENT'));
    const listed = sh(BIN, ['--help']).stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm);
    for (const [, c] of listed) assert.match(commands, new RegExp(`^ {7}${c}\\b`, 'm'), `the page lacks ${c}`);
    assert.match(text, /\/usr\/local\/bin\/subgate/);
    const man = sh('man', ['-l', page], { env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '80' } });
    assert.equal(man.status, 0, man.stderr);
    assert.match(man.stdout, /subgate - subscription billing/);
  });

  test('systemd-analyze verify passes the unit without a warning', () => {
    // ExecStart must name an existing binary: verify a copy that points at the staged one.
    const unitDir = tmpDir();
    const unit = fs.readFileSync(at(`${P}/lib/systemd/system/subgate.service`), 'utf8')
      .replace(/^ExecStart=\/usr\/local\/bin\/subgate /m, `ExecStart=${at(`${P}/bin/subgate`)} `);
    fs.writeFileSync(path.join(unitDir, 'subgate.service'), unit);
    const env = { ...process.env, MANPATH: `${at(`${P}/share/man`)}:` }; // Documentation=man:subgate(8)
    const r = sh('systemd-analyze', ['verify', path.join(unitDir, 'subgate.service')], { env });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout + r.stderr, '', 'systemd-analyze verify printed something');
    const sec = sh('systemd-analyze', ['security', '--offline=yes', '--threshold=20', path.join(unitDir, 'subgate.service')], { env });
    assert.equal(sec.status, 0, `exposure above 2.0 (threshold 20 tenths):\n${sec.stdout.split('\n').filter((l) => l.startsWith('✗')).join('\n')}${sec.stderr}`);
  });

  test('make uninstall removes what install installed', () => {
    make('uninstall', { DESTDIR: dest });
    for (const p of ['bin/subgate', 'lib/systemd/system/subgate.service', 'share/man/man8/subgate.8', 'share/doc/subgate']) {
      assert.ok(!fs.existsSync(at(`${P}/${p}`)), p);
    }
  });
});

test('PREFIX and SYSTEMD_UNIT_DIR choose the paths, and the unit follows them', () => {
  const dest = path.join(tmpDir(), 'with a space'); // quoted in every command: nothing lands elsewhere
  make('install', { DESTDIR: dest, PREFIX: '/usr', SYSTEMD_UNIT_DIR: '/lib/systemd/system' });
  const unit = fs.readFileSync(path.join(dest, 'lib/systemd/system/subgate.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/subgate serve$/m);
  assert.ok(fs.statSync(path.join(dest, 'usr/bin/subgate')).isFile());
  assert.match(fs.readFileSync(path.join(dest, 'usr/share/man/man8/subgate.8'), 'utf8'), /\/lib\/systemd\/system\/subgate\.service/);
  make('uninstall', { DESTDIR: dest, PREFIX: '/usr', SYSTEMD_UNIT_DIR: '/lib/systemd/system' });
  assert.ok(!fs.existsSync(path.join(dest, 'usr/bin/subgate')), 'uninstalled');
});
