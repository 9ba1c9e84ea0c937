// billing.js: the billing page's script (docs/billing-page.md). It takes the user's token from
// the address's fragment (#token=<JWT>) into sessionStorage, then shows pricing, the account,
// usage and invoices through the JS client (subgate.js, served beside it), and runs checkout,
// the portal, plan changes, cancel and resume. Every piece of data goes in with textContent.
import { Subgate, SubgateError } from './subgate.js';

const TOKEN_KEY = 'subgate.billing.token';
const RETURN_KEY = 'subgate.billing.return';
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const LIVE = ['active', 'trialing', 'past_due'];
const WINDOWS = {
  day: 'today (UTC day)',
  week: 'this week (from Monday 00:00 UTC)',
  month: 'this month (UTC calendar month)',
  billing_period: 'this billing period',
};

const $ = (id) => document.getElementById(id);

/*
 * The tab's sessionStorage; when the browser denies it (a framed page whose third-party storage
 * is blocked), a map that lives as long as the document: the app hands the token over again.
 */
const store = (() => {
  try {
    const s = window.sessionStorage;
    s.getItem(TOKEN_KEY);
    return s;
  } catch {
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
  }
})();

// The state the page shows; each refresh replaces it.
const state = { pricing: null, sub: null, usage: null, invoices: null, interval: 'month', preview: null };

/** A URL we may link to: http(s) only; null for anything else (javascript:, data:, junk). */
export function safeUrl(u) {
  try {
    const url = new URL(String(u), location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * Where checkout and the portal come back: the app's page handed over as #return=... (a page
 * that embeds this one), else this page without query or fragment.
 */
function returnUrl() {
  return store.getItem(RETURN_KEY) || location.origin + location.pathname;
}

/** returnUrl() with one more query parameter (kept literal: {CHECKOUT_SESSION_ID}). */
function returnWith(param) {
  const u = returnUrl();
  return `${u}${u.includes('?') ? '&' : '?'}${param}`;
}

/** Leaves for Stripe's page: in the top window when framed, as Stripe's pages refuse frames. */
function leaveFor(url) {
  if (window.top !== window.self) window.open(url, '_top');
  else location.assign(url);
}

/*
 * Moves a token (and a return address) from the fragment to sessionStorage and removes them from
 * the address bar (and so from the history). "#token=" with no value signs out. Returns { token, bad } where bad says
 * the fragment held something that is not a JWT (it is never stored or shown).
 */
function takeToken() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const handed = frag.has('token') || frag.has('return');
  let bad = false;
  if (frag.has('token')) {
    const t = frag.get('token');
    if (!t) store.removeItem(TOKEN_KEY);
    else if (JWT_SHAPE.test(t)) store.setItem(TOKEN_KEY, t);
    else bad = true;
    frag.delete('token');
  }
  if (frag.has('return')) {
    const r = safeUrl(frag.get('return'));
    if (r) store.setItem(RETURN_KEY, r);
    else store.removeItem(RETURN_KEY);
    frag.delete('return');
  }
  if (handed) {
    const rest = frag.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  return { token: store.getItem(TOKEN_KEY), bad };
}

const sg = new Subgate({
  // subgate's API is this page's parent path: /billing/ -> /, /prefix/billing/ -> /prefix/.
  baseUrl: new URL('../', location.href).href,
  token: () => store.getItem(TOKEN_KEY),
});

// --- the live region --------------------------------------------------------------------

/** Says text in the status region; kind 'error' marks it as an error in words, not only colour. */
function say(text, kind = 'info') {
  const el = $('status');
  el.className = `sg-status sg-status-${kind}`;
  el.textContent = kind === 'error' ? `Error: ${text}` : text;
}

/** What to tell the user of a failure: subgate's own message, and its code. */
function describe(e) {
  if (e instanceof SubgateError) {
    if (e.status === 0) return `cannot reach the billing service (${e.message})`;
    return e.code ? `${e.message} (${e.code})` : e.message;
  }
  return String(e && e.message ? e.message : e);
}

/** Runs an action with every button disabled, and reports its failure in the live region. */
async function busy(fn) {
  const buttons = [...document.querySelectorAll('button')];
  const was = buttons.map((b) => b.disabled);
  $('main').setAttribute('aria-busy', 'true');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SubgateError && e.status === 401) signedOut('expired');
    else say(describe(e), 'error');
    return undefined;
  } finally {
    buttons.forEach((b, i) => { b.disabled = was[i]; });
    $('main').removeAttribute('aria-busy');
  }
}

// --- formatting ---------------------------------------------------------------------------

function money(amount, currency) {
  const code = String(currency || 'usd').toUpperCase();
  try {
    const f = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
    const digits = f.resolvedOptions().maximumFractionDigits;
    return f.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${code} (minor units)`;
  }
}

function dateText(unix, withTime = false) {
  const opts = { year: 'numeric', month: 'short', day: 'numeric' };
  if (withTime) Object.assign(opts, { hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
  return new Intl.DateTimeFormat(undefined, opts).format(new Date(unix * 1000));
}

/** A <time> element for Unix seconds. */
function timeEl(unix, withTime = false) {
  const t = document.createElement('time');
  t.dateTime = new Date(unix * 1000).toISOString();
  t.textContent = dateText(unix, withTime);
  return t;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function tierName(id) {
  const t = state.pricing?.tiers?.find((x) => x.id === id);
  return t ? t.name : String(id ?? 'unknown');
}

const INTERVAL_WORD = { month: 'monthly', year: 'annual' };
const PER = { month: 'month', year: 'year' };

// --- the account --------------------------------------------------------------------------

function isLive(sub) {
  return Boolean(sub && sub.id && LIVE.includes(sub.status));
}

function renderAccount() {
  const { sub } = state;
  $('signed-out').hidden = true;
  $('account-details').hidden = false;
  const interval = sub.interval ? ` (${INTERVAL_WORD[sub.interval] || sub.interval})` : '';
  $('account-tier').textContent = `${tierName(sub.tier)}${interval}`;
  $('account-status').textContent = sub.status === 'none' ? 'no subscription' : String(sub.status).replaceAll('_', ' ');
  const ends = sub.cancel_at_period_end || sub.cancel_at;
  const at = sub.cancel_at || sub.current_period_end;
  $('account-period-label').textContent = ends ? 'Ends on' : 'Renews on';
  $('account-period').replaceChildren(isLive(sub) && at ? timeEl(at) : el('span', '—'));
  renderPending(sub);
  const live = isLive(sub);
  $('portal-button').hidden = !sub.id;
  $('cancel-button').hidden = !live || Boolean(ends);
  $('resume-button').hidden = !live || !sub.cancel_at_period_end;
  $('withdraw-button').hidden = !(sub.pending_change && sub.pending_change.status === 'scheduled');
  if ($('cancel-button').hidden) $('cancel-confirm').hidden = true;
}

/** A pending cancellation or plan change, in words, and the invoice to pay for an upgrade. */
function renderPending(sub) {
  const p = sub.pending_change;
  const pending = $('account-pending');
  const pay = $('account-pay');
  pending.hidden = true;
  pay.hidden = true;
  pay.replaceChildren();
  if (sub.cancel_at_period_end && sub.current_period_end) {
    pending.replaceChildren('Cancellation pending: your plan ends on ', timeEl(sub.cancel_at || sub.current_period_end),
      '. Resume to keep it.');
    pending.hidden = false;
  }
  if (!p) return;
  const target = `${tierName(p.tier)}${p.interval ? ` (${INTERVAL_WORD[p.interval] || p.interval})` : ''}`;
  if (p.status === 'scheduled') {
    pending.replaceChildren(`Plan change pending: to ${target} on `, p.effective_at ? timeEl(p.effective_at) : 'the period end', '.');
    pending.hidden = false;
  } else if (p.status === 'payment_pending') {
    pay.append(`Upgrade to ${target} waits for its payment. `);
    const url = p.invoice ? safeUrl(p.invoice.hosted_invoice_url) : null;
    if (url) {
      const a = el('a', `Pay ${money(p.invoice.amount_due, p.invoice.currency)} on the invoice page`);
      a.href = url;
      pay.append(a);
    } else {
      pay.append('The invoice is on its way: reload this page in a moment.');
    }
    pay.hidden = false;
  }
}

function renderUsage() {
  const quotas = Object.entries(state.usage?.quotas || {});
  const list = $('usage-list');
  list.replaceChildren();
  $('usage').hidden = quotas.length === 0;
  const units = new Map();
  for (const t of state.pricing?.tiers || []) for (const q of t.quotas || []) units.set(q.id, q.unit);
  for (const [id, q] of quotas) {
    const li = el('li', null, 'sg-quota');
    const name = String(id).replaceAll('_', ' ');
    const label = el('label', name.charAt(0).toUpperCase() + name.slice(1));
    const barId = `quota-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const textId = `${barId}-text`;
    label.htmlFor = barId;
    li.append(label);
    const unit = units.get(id) ? ` ${units.get(id)}s` : ''; // the catalogue's units are singular nouns
    const window = WINDOWS[q.window] || String(q.window);
    let words;
    if (q.limit === null || q.limit === undefined) {
      words = `${q.used}${unit} used ${window}; no limit.`;
    } else {
      const bar = document.createElement('progress');
      bar.id = barId;
      bar.max = Math.max(q.limit, 1);
      bar.value = Math.min(q.used, bar.max);
      bar.setAttribute('aria-describedby', textId);
      if (q.used >= q.limit) bar.className = 'sg-full';
      li.append(bar);
      words = `${q.used} of ${q.limit}${unit} used ${window}${q.used >= q.limit ? ' (limit reached)' : ''}.`;
    }
    const text = el('p', null, 'sg-quota-text');
    text.id = textId;
    text.append(`${words} Resets `, timeEl(q.resets_at, true), '.');
    li.append(text);
    list.append(li);
  }
}

function renderInvoices() {
  const rows = state.invoices?.data || [];
  $('invoices').hidden = false;
  $('invoices-none').hidden = rows.length > 0;
  $('invoices-table').hidden = rows.length === 0;
  const body = $('invoices-body');
  body.replaceChildren();
  for (const inv of rows) {
    const tr = document.createElement('tr');
    const name = el('th', inv.number || inv.id);
    name.scope = 'row';
    const links = el('td');
    for (const [text, u] of [['View', inv.hosted_invoice_url], ['PDF', inv.invoice_pdf]]) {
      const url = safeUrl(u);
      if (!url) continue;
      const a = el('a', text);
      a.href = url;
      a.setAttribute('aria-label', `${text} invoice ${inv.number || inv.id}`);
      if (links.childNodes.length) links.append(' ');
      links.append(a);
    }
    if (!links.childNodes.length) links.textContent = '—';
    tr.append(name, el('td'), el('td', money(inv.amount_due, inv.currency)), el('td', inv.status), links);
    tr.children[1].append(timeEl(inv.created));
    body.append(tr);
  }
}

// --- plans --------------------------------------------------------------------------------

function priceFor(tier, interval) {
  return (tier.prices || []).find((p) => p.interval === interval) || null;
}

function renderPlans() {
  const tiers = state.pricing?.tiers || [];
  const annual = tiers.some((t) => priceFor(t, 'year'));
  $('interval').hidden = !annual;
  if (!annual) state.interval = 'month';
  for (const r of document.querySelectorAll('input[name=interval]')) r.checked = r.value === state.interval;
  const list = $('plan-list');
  list.replaceChildren();
  for (const t of tiers) list.append(planCard(t));
}

function planCard(t) {
  const li = el('li', null, 'sg-plan');
  const current = state.sub && t.id === state.sub.tier;
  if (current) li.classList.add('sg-current');
  li.append(el('h3', t.name));
  const price = priceFor(t, state.interval);
  if (t.contact_sales) li.append(el('p', 'Contact sales', 'sg-price'));
  else if (price && price.amount > 0) li.append(el('p', `${money(price.amount, price.currency)} per ${PER[price.interval]}`, 'sg-price'));
  else if (t.checkout && !price) li.append(el('p', `Not sold ${INTERVAL_WORD[state.interval] || state.interval}`, 'sg-price'));
  else li.append(el('p', 'No charge', 'sg-price'));
  if (t.description) li.append(el('p', t.description));
  if (t.features?.length) {
    const ul = el('ul', null, 'sg-features');
    for (const f of t.features) ul.append(el('li', String(f).replaceAll('_', ' ')));
    li.append(ul);
  }
  const action = planAction(t, price, current);
  if (action) li.append(action);
  return li;
}

/** The card's button (or words): subscribe, change to it, or why neither. */
function planAction(t, price, current) {
  const { sub } = state;
  if (!sub) return t.checkout ? el('p', 'Sign in to subscribe.', 'sg-note') : null;
  const live = isLive(sub);
  if (current && (!live || !price || sub.interval === price.interval)) return el('p', 'Your current plan', 'sg-badge');
  if (!t.checkout || !price) return null;
  if (!live) return button(`Subscribe to ${t.name}`, () => checkout(t, price));
  if (sub.cancel_at_period_end) return el('p', 'Resume your subscription to change plans.', 'sg-note');
  if (sub.pending_change && sub.pending_change.status === 'payment_pending') return null;
  const label = current ? `Switch to ${INTERVAL_WORD[price.interval]} billing` : `Change to ${t.name}`;
  return button(label, () => preview(t, price));
}

function button(text, onClick) {
  const b = el('button', text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

async function checkout(t, price) {
  await busy(async () => {
    say(`Opening the checkout for ${t.name}…`);
    const s = await sg.checkout({
      tier: t.id,
      interval: price.interval,
      successUrl: returnWith('session_id={CHECKOUT_SESSION_ID}'),
      cancelUrl: returnWith('checkout=cancelled'),
    });
    const url = safeUrl(s.url);
    if (!url) throw new Error('the checkout answered without a valid address');
    leaveFor(url);
  });
}

async function preview(t, price) {
  await busy(async () => {
    const p = await sg.previewPlanChange({ tier: t.id, interval: price.interval });
    state.preview = p;
    const target = `${t.name} (${INTERVAL_WORD[p.interval] || p.interval})`;
    if (p.change === 'upgrade') {
      $('preview-text').textContent = `Change to ${target} now. You pay ${money(p.amount_due_now, p.currency)} today for the rest of this period.`;
    } else if (p.change === 'downgrade') {
      $('preview-text').replaceChildren(`Change to ${target} on `, timeEl(p.effective_at), '. Nothing to pay now.');
    } else {
      $('preview-text').textContent = `You are already on ${target}.`;
    }
    const n = p.next_invoice;
    $('preview-next').replaceChildren(...(n ? ['Next invoice: ', money(n.amount_due, n.currency), ' on ', timeEl(n.date), '.'] : []));
    $('preview-confirm').hidden = p.change === 'none';
    $('preview').hidden = false;
    say(`Price preview for ${target} is shown. Confirm or keep your plan.`);
    $('preview-title').focus();
  });
}

// --- actions ------------------------------------------------------------------------------

async function confirmChange() {
  const p = state.preview;
  if (!p) return;
  await busy(async () => {
    try {
      const r = await sg.changePlan({ tier: p.tier, interval: p.interval });
      closePreview();
      $('account-title').focus(); // the plan cards are drawn again: keep the keyboard's place near
      say(r.change?.status === 'scheduled'
        ? `Plan change to ${tierName(p.tier)} scheduled for the end of the period.`
        : `Your plan is now ${tierName(r.tier)}.`);
    } catch (e) {
      closePreview();
      if (!(e instanceof SubgateError && e.code === 'payment_pending')) throw e;
      say(`${describe(e)}. Pay the invoice shown under your account to complete the upgrade.`, 'error');
    }
    await refreshAccount();
  });
}

function closePreview() {
  state.preview = null;
  $('preview').hidden = true;
}

async function portal() {
  await busy(async () => {
    say('Opening the billing portal…');
    const r = await sg.portal(returnUrl());
    const url = safeUrl(r.url);
    if (!url) throw new Error('the portal answered without a valid address');
    leaveFor(url);
  });
}

function askCancel() {
  const end = state.sub?.current_period_end;
  $('cancel-confirm-text').replaceChildren(...(end
    ? ['Your plan stays until ', timeEl(end), ', then you move to the free plan. You can resume until then.']
    : ['Your plan stays until the end of the period, then you move to the free plan.']));
  $('cancel-confirm').hidden = false;
  $('cancel-confirm-title').focus();
}

async function cancel() {
  await busy(async () => {
    await sg.cancel();
    $('cancel-confirm').hidden = true;
    say('Your subscription will end at the end of the period.');
    await refreshAccount();
  });
  if (!$('resume-button').hidden) $('resume-button').focus();
}

async function resume() {
  await busy(async () => {
    await sg.resumeSubscription();
    say('Your subscription is resumed: it renews as before.');
    await refreshAccount();
  });
}

async function withdraw() {
  await busy(async () => {
    await sg.cancelPlanChange();
    say('The plan change is withdrawn: you keep your current plan.');
    await refreshAccount();
  });
}

// --- loading ------------------------------------------------------------------------------

function signedOut(why) {
  state.sub = null;
  state.usage = null;
  state.invoices = null;
  $('account-details').hidden = true;
  $('usage').hidden = true;
  $('invoices').hidden = true;
  $('signed-out').hidden = false;
  if (why === 'expired') {
    store.removeItem(TOKEN_KEY);
    say('Your sign-in has expired or is not valid: open this page from the app again.', 'error');
  } else if (why === 'bad') {
    say('The address held a token that is not a valid sign-in token: open this page from the app again.', 'error');
  }
  renderPlans();
}

async function refreshAccount() {
  const [sub, usage, invoices] = await Promise.all([sg.subscription(), sg.usage(), sg.invoices({ limit: 12 })]);
  Object.assign(state, { sub, usage, invoices });
  if (sub.interval) state.interval = sub.interval;
  renderAccount();
  renderUsage();
  renderInvoices();
  renderPlans();
}

/** Applies a checkout the user comes back from, then drops ?session_id from the address. */
async function returning() {
  const q = new URLSearchParams(location.search);
  const session = q.get('session_id');
  const cancelled = q.get('checkout') === 'cancelled';
  if (!session && !cancelled) return;
  history.replaceState(history.state, '', location.pathname + location.hash);
  if (cancelled) {
    say('Checkout cancelled: nothing was charged and your plan is unchanged.');
    return;
  }
  say('Applying your payment…');
  const sub = await sg.checkoutSuccess(session);
  say(`Thank you: your plan is now ${tierName(sub.tier)}.`);
}

function wire() {
  $('portal-button').addEventListener('click', portal);
  $('cancel-button').addEventListener('click', askCancel);
  $('cancel-yes').addEventListener('click', cancel);
  $('cancel-no').addEventListener('click', () => { $('cancel-confirm').hidden = true; $('cancel-button').focus(); });
  $('resume-button').addEventListener('click', resume);
  $('withdraw-button').addEventListener('click', withdraw);
  $('preview-confirm').addEventListener('click', confirmChange);
  $('preview-cancel').addEventListener('click', () => { closePreview(); say('Plan unchanged.'); });
  for (const r of document.querySelectorAll('input[name=interval]')) {
    r.addEventListener('change', () => { state.interval = r.value; closePreview(); renderPlans(); });
  }
}

/** Shows the user whose token was handed over (or pricing alone without one). */
async function load() {
  const { token, bad } = takeToken();
  if (!token || bad) {
    signedOut(bad ? 'bad' : 'none');
    if (!bad && new URLSearchParams(location.search).has('session_id')) {
      say('Thank you: your payment is being applied. Open this page from the app to see your plan.');
    }
    return;
  }
  // A checkout that cannot be applied is told, and the account is shown all the same.
  await busy(returning);
  if (store.getItem(TOKEN_KEY)) await busy(refreshAccount);
}

async function start() {
  wire();
  try {
    state.pricing = await sg.pricing();
  } catch (e) {
    say(`cannot load the plans: ${describe(e)}`, 'error');
    return;
  }
  await load();
  // An app may hand a new token to the open page (an iframe's src with a new #token=...).
  window.addEventListener('hashchange', () => {
    if (!new URLSearchParams(location.hash.slice(1)).has('token')) return;
    delete document.body.dataset.ready;
    load().finally(() => { document.body.dataset.ready = 'true'; });
  });
}

start().finally(() => { document.body.dataset.ready = 'true'; });
