// Mura's block explorer: reads this node's JSON-RPC (POST /) and follows new blocks over its
// websocket (/ws). Every value from the chain is put into the page as text, never as markup.
"use strict";

(function () {
  // --- labels -------------------------------------------------------------------------------

  const LABELS = {
    en: {
      brand: "Mura explorer", nav_status: "Status", nav_validators: "Validators", nav_assets: "Assets",
      nav_bonds: "Bonds", live_on: "Live", live_off: "Not live", search_label: "Search", search_go: "Search",
      search_placeholder: "Address, transaction or block hash, block height, asset id",
      loading: "Loading…", more: "More", none: "None", yes: "yes", no: "no", home: "Back to the status page",
      status_title: "Chain status", chain_id: "Chain", height: "Height", since_last: "Last block",
      view: "View", role: "This node", role_validator: "validator", role_observer: "observer (follows, never votes)",
      not_voting: "not in the current set", behind: "Blocks behind", peers: "Peers",
      seconds_ago: "{n} s ago", minutes_ago: "{n} min ago", hours_ago: "{n} h ago", days_ago: "{n} days ago",
      latest_blocks: "Latest blocks", time: "Time", proposer: "Proposer", transactions: "Transactions",
      hash: "Hash", validators: "Validators", name: "Name", address: "Address", signed: "Signed",
      signed_note: "Signatures in the certificates of the last {n} blocks (a certificate needs {q}).",
      view_changes: "View changes",
      view_steady: "The view stayed at {v} through the last {n} blocks: no primary was replaced.",
      view_moved: "The view moved from {a} to {b} over the last {n} blocks: each view change replaces a primary that did not get a block decided in time.",
      block_title: "Block {h}", parent: "Parent", state_root: "State root", transaction_root: "Transaction root",
      next_validators_hash: "Next validators hash", certificate: "Certificate", signers: "Signers",
      genesis_certificate: "The genesis block is final by the genesis file, not by votes.",
      first_of: "Showing the first {n} of {m}.", kind: "Kind", sender: "Sender", summary: "Summary",
      tx_title: "Transaction", status: "Status", block: "Block", index: "Position", nonce: "Nonce",
      memo: "Memo", amount: "Amount", recipient: "Recipient", account: "Account", asset: "Asset", size: "Size",
      bytes: "{n} bytes", signature: "Signature", details: "Details",
      st_final: "Final", st_pending: "Pending: waiting in this node's mempool", st_dropped: "Dropped",
      account_title: "Account", balances: "Balances", balance: "Balance", history: "History", roles: "Roles",
      no_balances: "This account holds nothing.", no_history: "No transactions yet.",
      asset_title: "Asset {a}", assets_title: "Assets", decimals: "Decimals", issuer: "Issuer",
      registrar: "Registrar", policy: "Transfers", policy_open: "open to anyone", policy_restricted:
      "approved holders only", reissuable: "Reissuable", cap: "Supply cap", expiry: "Expires", supply: "Supply",
      holders: "Holders", lapsed: "Lapsed", expired: "Expired", no_cap: "no cap", never: "never",
      is_bond: "This asset is a municipal bond: see its terms and payments.",
      bond_title: "Bond {a}", bonds_title: "Bonds", settlement: "Paid in", face: "Face value per unit",
      rate: "Interest rate", frequency: "Payments a year", issue_date: "Issued", maturity: "Maturity",
      paying: "Paying account", proceeds_account: "Proceeds go to", use_of_proceeds: "Use of proceeds",
      green: "Green bond", paying_balance: "Paying account holds", schedule: "Payment schedule",
      payment_kind: "Payment", per_unit: "Per unit", required: "Required", coupon: "coupon",
      redemption: "redemption", pay_scheduled: "scheduled", pay_due: "due", pay_paying: "paying",
      pay_missed: "missed", pay_paid: "paid", pay_paid_late: "paid late", offering: "Offering",
      no_offering: "No offering has been opened.", units: "Units", price: "Price per unit", opens: "Opens",
      closes: "Closes", subscribed: "Subscribed", allotted: "Allotted", refunded: "Refunded", unsold: "Unsold",
      raised: "Raised", spent: "Spent", left: "Left", purpose: "Purpose", subscriber: "Subscriber",
      paid: "Paid", asked: "Asked", proposals: "Open proposals", no_proposals: "No open proposals.",
      change: "Change", approvals: "Approvals", expires_at: "Expires at height", quorum: "Quorum",
      faults: "Faults tolerated", public_key: "Public key", validators_title: "Validators at height {h}",
      redeemed: "Redeemed", no_assets: "No assets yet.", no_bonds: "No bonds yet.",
      decided_proposals: "Decided proposals", no_decided_proposals: "No proposal has been approved or has expired.",
      outcome: "Outcome", approved_from: "approved: in force from height {h}", expired_at: "expired at height {h}",
      latest_of: "The latest {n} of {m}.",
      ch_add_validator: "Add validator {name} at {address}, key {key}", ch_remove_validator: "Remove validator {name}",
      ch_replace_key: "New key for {name}: {key}", ch_replace_key_address: "New key for {name}: {key}, at {address}",
      ch_grant_issuer: "Give the issuer role to", ch_revoke_issuer: "Take the issuer role from",
      // errors
      err_unreachable: "The node cannot be reached. Is it running? ({detail})",
      err_node: "The node could not answer: {detail}", err_route: "There is no page at this address.",
      err_malformed: "This page address is malformed.", err_block_param:
      "“{v}” is not a block height or a block hash (0x and 64 hex digits).",
      err_tx_param: "“{v}” is not a transaction hash (0x and 64 hex digits).",
      err_no_block: "There is no block {v} yet (the chain's height is {h}).",
      err_no_block_hash: "No block has the hash {v}.", err_no_tx: "No transaction has the hash {v}.",
      err_not_kept: "This node does not keep that far back: it joined the chain at height {h}.",
      err_bad_address: "“{v}” is not an address on this network: {detail}",
      err_bad_asset: "“{v}” is not an asset id (at most 32 capital letters, digits and hyphens, such as NAC).",
      err_no_address: "This page shows an account: its address is missing.",
      err_no_asset: "No asset has the id {v}.", err_not_bond: "{v} is an asset, not a bond.",
      err_unexpected: "Something went wrong while showing this page: {detail}",
      search_empty: "Type something to search for.",
      search_help: "Type an address ({p}1…), a transaction or block hash (0x…), a block height, or an asset id.",
      search_no_hash: "No transaction or block has the hash {v}.", search_too_long: "That is too long to be anything here.",
    },
    ja: {
      brand: "Mura エクスプローラー", nav_status: "状況", nav_validators: "バリデーター", nav_assets: "資産",
      nav_bonds: "債券", live_on: "ライブ", live_off: "ライブ停止中", search_label: "検索", search_go: "検索",
      search_placeholder: "アドレス、取引またはブロックのハッシュ、ブロック高、資産ID",
      loading: "読み込み中…", more: "さらに表示", none: "なし", yes: "はい", no: "いいえ", home: "状況ページへ戻る",
      status_title: "チェーンの状況", chain_id: "チェーン", height: "ブロック高", since_last: "最新ブロック",
      view: "ビュー", role: "このノード", role_validator: "バリデーター", role_observer: "オブザーバー（追従のみ、投票なし）",
      not_voting: "現在のセットに含まれない", behind: "遅れているブロック数", peers: "接続ピア",
      seconds_ago: "{n}秒前", minutes_ago: "{n}分前", hours_ago: "{n}時間前", days_ago: "{n}日前",
      latest_blocks: "最新のブロック", time: "時刻", proposer: "提案者", transactions: "取引",
      hash: "ハッシュ", validators: "バリデーター", name: "名前", address: "アドレス", signed: "署名",
      signed_note: "直近{n}ブロックの証明書に含まれる署名の数（証明書には{q}個必要）。",
      view_changes: "ビュー変更",
      view_steady: "直近{n}ブロックの間、ビューは {v} のままでした（プライマリの交代なし）。",
      view_moved: "直近{n}ブロックの間にビューが {a} から {b} に進みました。ビュー変更は、時間内にブロックを決定できなかったプライマリを交代させます。",
      block_title: "ブロック {h}", parent: "親ブロック", state_root: "状態ルート", transaction_root: "取引ルート",
      next_validators_hash: "次のバリデーターのハッシュ", certificate: "証明書", signers: "署名者",
      genesis_certificate: "ジェネシスブロックは投票ではなくジェネシスファイルによって確定しています。",
      first_of: "{m}件のうち最初の{n}件を表示しています。", kind: "種類", sender: "送信者", summary: "概要",
      tx_title: "取引", status: "状態", block: "ブロック", index: "位置", nonce: "ノンス",
      memo: "メモ", amount: "金額", recipient: "受取人", account: "口座", asset: "資産", size: "サイズ",
      bytes: "{n}バイト", signature: "署名", details: "詳細",
      st_final: "確定", st_pending: "保留中：このノードのメモリプールで待機中", st_dropped: "破棄",
      account_title: "口座", balances: "残高", balance: "残高", history: "履歴", roles: "役割",
      no_balances: "この口座には残高がありません。", no_history: "まだ取引はありません。",
      asset_title: "資産 {a}", assets_title: "資産", decimals: "小数桁数", issuer: "発行者",
      registrar: "名簿管理者", policy: "移転", policy_open: "誰でも可", policy_restricted: "承認された保有者のみ",
      reissuable: "追加発行", cap: "発行上限", expiry: "有効期限", supply: "発行量",
      holders: "保有者", lapsed: "失効額", expired: "失効済み", no_cap: "上限なし", never: "なし",
      is_bond: "この資産は地方債です。条件と支払いをご覧ください。",
      bond_title: "債券 {a}", bonds_title: "債券", settlement: "支払資産", face: "1単位の額面",
      rate: "利率", frequency: "年間の利払い回数", issue_date: "発行日", maturity: "償還日",
      paying: "支払口座", proceeds_account: "調達資金の受取口座", use_of_proceeds: "資金使途",
      green: "グリーンボンド", paying_balance: "支払口座の残高", schedule: "支払予定",
      payment_kind: "支払", per_unit: "1単位あたり", required: "必要額", coupon: "利払い",
      redemption: "償還", pay_scheduled: "予定", pay_due: "期日到来", pay_paying: "支払中",
      pay_missed: "未払い", pay_paid: "支払済み", pay_paid_late: "遅延して支払済み", offering: "募集",
      no_offering: "募集はまだ開始されていません。", units: "口数", price: "1単位の価格", opens: "開始",
      closes: "締切", subscribed: "申込口数", allotted: "割当", refunded: "返金", unsold: "売れ残り",
      raised: "調達額", spent: "支出額", left: "残額", purpose: "使途", subscriber: "申込者",
      paid: "払込額", asked: "申込", proposals: "審議中の提案", no_proposals: "審議中の提案はありません。",
      change: "変更", approvals: "承認", expires_at: "期限のブロック高", quorum: "定足数",
      faults: "許容される故障数", public_key: "公開鍵", validators_title: "ブロック高 {h} のバリデーター",
      redeemed: "償還済み", no_assets: "資産はまだありません。", no_bonds: "債券はまだありません。",
      decided_proposals: "決着した提案", no_decided_proposals: "承認または期限切れになった提案はありません。",
      outcome: "結果", approved_from: "承認：ブロック高 {h} から有効", expired_at: "ブロック高 {h} で期限切れ",
      latest_of: "{m}件のうち最新の{n}件。",
      ch_add_validator: "バリデーター {name} を追加（{address}、鍵 {key}）", ch_remove_validator: "バリデーター {name} を削除",
      ch_replace_key: "{name} の鍵を {key} に交換", ch_replace_key_address: "{name} の鍵を {key} に交換（{address}）",
      ch_grant_issuer: "発行者の役割を付与：", ch_revoke_issuer: "発行者の役割を取消：",
      err_unreachable: "ノードに接続できません。ノードは動いていますか？（{detail}）",
      err_node: "ノードが応答できませんでした：{detail}", err_route: "このアドレスのページはありません。",
      err_malformed: "このページのアドレスは正しくありません。",
      err_block_param: "「{v}」はブロック高でもブロックハッシュ（0x と16進数64桁）でもありません。",
      err_tx_param: "「{v}」は取引ハッシュ（0x と16進数64桁）ではありません。",
      err_no_block: "ブロック {v} はまだありません（現在のブロック高は {h}）。",
      err_no_block_hash: "ハッシュ {v} のブロックはありません。", err_no_tx: "ハッシュ {v} の取引はありません。",
      err_not_kept: "このノードはそこまで古い記録を保持していません（ブロック高 {h} から参加）。",
      err_bad_address: "「{v}」はこのネットワークのアドレスではありません：{detail}",
      err_bad_asset: "「{v}」は資産IDではありません（NAC のような32文字以内の英大文字・数字・ハイフン）。",
      err_no_address: "口座を表示するページですが、アドレスがありません。",
      err_no_asset: "ID {v} の資産はありません。", err_not_bond: "{v} は債券ではなく資産です。",
      err_unexpected: "このページの表示中に問題が起きました：{detail}",
      search_empty: "検索する値を入力してください。",
      search_help: "アドレス（{p}1…）、取引またはブロックのハッシュ（0x…）、ブロック高、資産IDを入力してください。",
      search_no_hash: "ハッシュ {v} の取引もブロックもありません。", search_too_long: "長すぎて該当するものがありません。",
    },
  };
  const KIND_LABELS = {
    en: {
      transfer: "Transfer", mint: "Mint", burn: "Burn", issue_asset: "Issue asset", approve_holder: "Approve holder",
      revoke_holder: "Revoke holder", freeze: "Freeze", unfreeze: "Unfreeze", issue_bond: "Issue bond",
      open_offering: "Open offering", subscribe: "Subscribe", cancel_subscription: "Cancel subscription",
      settle_trade: "Settle trade", spend_proceeds: "Spend proceeds", propose: "Propose", approve: "Approve proposal",
    },
    ja: {
      transfer: "送金", mint: "追加発行", burn: "焼却", issue_asset: "資産の発行", approve_holder: "保有者の承認",
      revoke_holder: "保有者の承認取消", freeze: "凍結", unfreeze: "凍結解除", issue_bond: "債券の発行",
      open_offering: "募集の開始", subscribe: "申込", cancel_subscription: "申込の取消",
      settle_trade: "売買の決済", spend_proceeds: "調達資金の支出", propose: "提案", approve: "提案の承認",
    },
  };
  const LANG_KEY = "mura.explorer.lang";
  let lang = chooseLanguage();

  function chooseLanguage() {
    let stored = null;
    try { stored = window.localStorage.getItem(LANG_KEY); } catch (e) { stored = null; }
    if (stored === "en" || stored === "ja") return stored;
    return (navigator.language || "").toLowerCase().startsWith("ja") ? "ja" : "en";
  }

  function t(key, values) {
    const text = LABELS[lang][key] !== undefined ? LABELS[lang][key] : LABELS.en[key];
    if (text === undefined) return key;
    return text.replace(/\{(\w+)\}/g, (all, name) => (values && values[name] !== undefined ? String(values[name]) : all));
  }

  function kindLabel(kind) {
    return KIND_LABELS[lang][kind] || kind;
  }

  // --- talking to the node --------------------------------------------------------------------

  class RpcFailure extends Error {
    constructor(code, message, data) {
      super(message);
      this.code = code;
      this.data = data || {};
    }
  }

  class Unreachable extends Error {}

  // Amounts can exceed 2^53, past which a JavaScript number loses digits: integers that large are
  // read as strings, and every amount is formatted through BigInt.
  function parseJson(text) {
    const safe = text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, (token) => {
      if (token[0] === '"' || /[.eE]/.test(token)) return token;
      return Number.isSafeInteger(Number(token)) ? token : '"' + token + '"';
    });
    return JSON.parse(safe);
  }

  async function post(payload) {
    let response;
    try {
      response = await fetch(new URL("/", window.location.href), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
        cache: "no-store",
      });
    } catch (error) {
      throw new Unreachable(String(error && error.message ? error.message : error));
    }
    const text = await response.text();
    let answer;
    try {
      answer = parseJson(text);
    } catch (error) {
      throw new Unreachable("HTTP " + response.status);
    }
    return answer;
  }

  function unwrap(answer) {
    if (answer && answer.error) throw new RpcFailure(answer.error.code, answer.error.message, answer.error.data);
    if (!answer || !("result" in answer)) throw new Unreachable("an answer without a result");
    return answer.result;
  }

  let nextId = 1;

  async function call(method, params) {
    return unwrap(await post({ jsonrpc: "2.0", id: nextId++, method: method, params: params || [] }));
  }

  // Several calls in one request; each entry is its result or its RpcFailure.
  async function batch(calls) {
    if (calls.length === 0) return [];
    const first = nextId;
    const answers = await post(calls.map(([method, params], i) => ({ jsonrpc: "2.0", id: first + i, method, params })));
    nextId += calls.length;
    if (!Array.isArray(answers)) return calls.map(() => { try { unwrap(answers); } catch (e) { return e; } return new Unreachable("?"); });
    const byId = new Map(answers.map((answer) => [answer.id, answer]));
    return calls.map((unused, i) => {
      try { return unwrap(byId.get(first + i)); } catch (error) { return error; }
    });
  }

  function orThrow(value) {
    if (value instanceof Error) throw value;
    return value;
  }

  // What the page needs again and again: the chain's identity, validators' names, assets' decimals.
  const cache = { chain: null, names: new Map(), assets: new Map(), bonds: new Map() };

  async function chainInfo() {
    if (cache.chain === null) {
      const [status, validators] = await batch([["chain_status", []], ["chain_validators", []]]);
      cache.chain = orThrow(status);
      if (!(validators instanceof Error)) rememberNames(validators.validators);
      document.getElementById("chain-id").textContent = cache.chain.chain_id;
    }
    return cache.chain;
  }

  function rememberNames(validators) {
    for (const validator of validators) cache.names.set(validator.address, validator.name);
  }

  async function assetInfo(id) {
    if (!cache.assets.has(id)) {
      try {
        cache.assets.set(id, await call("asset_get", [id]));
      } catch (error) {
        if (error instanceof RpcFailure) return null;
        throw error;
      }
    }
    return cache.assets.get(id);
  }

  async function bondInfo(id) {
    if (!cache.bonds.has(id)) {
      try {
        cache.bonds.set(id, await call("bond_get", [id]));
      } catch (error) {
        if (error instanceof RpcFailure) return null;
        throw error;
      }
    }
    return cache.bonds.get(id);
  }

  // --- formatting --------------------------------------------------------------------------------

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // An amount in its asset's smallest unit, shown with the asset's decimals: 1250 with 2 decimals is 12.50.
  function formatAmount(value, decimals) {
    let amount;
    try { amount = BigInt(String(value)); } catch (e) { return String(value); }
    const negative = amount < 0n;
    if (negative) amount = -amount;
    const digits = amount.toString().padStart((decimals || 0) + 1, "0");
    const whole = digits.slice(0, digits.length - (decimals || 0));
    const fraction = decimals ? "." + digits.slice(digits.length - decimals) : "";
    return (negative ? "-" : "") + group(whole) + fraction;
  }

  function formatCount(value) {
    return group(String(value));
  }

  function formatTime(ms) {
    if (ms === null || ms === undefined) return "";
    const date = new Date(Number(ms));
    if (Number.isNaN(date.getTime())) return String(ms);
    return date.toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", { dateStyle: "medium", timeStyle: "medium" });
  }

  function formatAgo(ms) {
    const seconds = Math.max(0, Math.floor((Date.now() - Number(ms)) / 1000));
    if (seconds < 120) return t("seconds_ago", { n: seconds });
    if (seconds < 7200) return t("minutes_ago", { n: Math.floor(seconds / 60) });
    if (seconds < 172800) return t("hours_ago", { n: Math.floor(seconds / 3600) });
    return t("days_ago", { n: Math.floor(seconds / 86400) });
  }

  function shortText(text, keep) {
    const value = String(text);
    return value.length <= 2 * keep + 1 ? value : value.slice(0, keep) + "…" + value.slice(-keep);
  }

  // --- building the page (text only, never markup) ------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function link(href, text, attributes) {
    return el("a", Object.assign({ href: href }, attributes || {}), text);
  }

  function safeSegment(value) {
    return encodeURIComponent(String(value));
  }

  function accountLink(address, full) {
    const name = cache.names.get(address);
    const shown = full ? address : shortText(address, 10);
    return el("span", { class: "party" },
      link("#/account/" + safeSegment(address), shown, { class: "mono", title: address }),
      name ? el("span", { class: "tag" }, name) : null);
  }

  function blockLink(height) {
    return link("#/block/" + safeSegment(height), formatCount(height));
  }

  function txLink(hash, full) {
    return link("#/tx/" + safeSegment(hash), full ? hash : shortText(hash, 8), { class: "mono", title: hash });
  }

  function assetLink(id) {
    return link("#/asset/" + safeSegment(id), id);
  }

  function money(value, decimals, symbol) {
    return el("span", { class: "money" }, el("span", { class: "amount" }, formatAmount(value, decimals)),
      symbol ? " " : null, symbol ? el("span", { class: "symbol" }, symbol) : null);
  }

  // A definition list of label/value pairs; each value is marked data-field=<name>.
  function facts(rows) {
    return el("dl", { class: "facts" }, rows.filter(Boolean).map(([name, label, value]) => [
      el("dt", {}, label),
      el("dd", { "data-field": name }, value === null || value === undefined || value === "" ? "—" : value),
    ]));
  }

  function table(id, headers, rows, empty) {
    if (rows.length === 0 && empty) return el("p", { id: id, class: "empty" }, empty);
    return el("div", { class: "scroll" }, el("table", { id: id },
      el("thead", {}, el("tr", {}, headers.map((header) => el("th", {}, header)))),
      el("tbody", {}, rows)));
  }

  function section(title, ...content) {
    return el("section", {}, el("h2", {}, title), ...content);
  }

  // --- the view's frame ----------------------------------------------------------------------------

  const main = document.getElementById("view");
  let renderToken = 0;
  let onBlock = null; // what the current view does with a new final block
  let ticker = null;

  function setView(view, state) {
    main.setAttribute("data-view", view);
    main.setAttribute("data-state", state);
  }

  function showLoading(view) {
    setView(view, "loading");
    main.replaceChildren(el("p", { class: "message" }, t("loading")));
  }

  function showError(view, message) {
    setView(view, "error");
    main.replaceChildren(
      el("div", { class: "message error", role: "alert" }, message),
      el("p", {}, link("#/", t("home"))));
  }

  function messageFor(error) {
    if (error instanceof Unreachable) return t("err_unreachable", { detail: error.message });
    if (error instanceof RpcFailure) {
      if (error.code === -32040) return t("err_not_kept", { h: error.data.kept_from });
      const detail = error.data && error.data.reason ? error.data.reason : error.message;
      return t("err_node", { detail: detail });
    }
    return t("err_unexpected", { detail: error && error.message ? error.message : String(error) });
  }

  // --- routes -----------------------------------------------------------------------------------------

  const HASH_PATTERN = /^0x[0-9a-fA-F]{64}$/;
  const HEIGHT_PATTERN = /^\d{1,15}$/;
  // An asset id as the chain allows it (chain/assets.py): at most 32 characters.
  const ASSET_PATTERN = /^(?=.{1,32}$)[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$/;
  const MAX_SEGMENT = 200;

  const ROUTES = {
    "": ["status", renderStatus],
    block: ["block", renderBlock],
    tx: ["tx", renderTransaction],
    account: ["account", renderAccount],
    asset: ["asset", renderAsset],
    bond: ["bond", renderBond],
    validators: ["validators", renderValidators],
    assets: ["assets", renderAssets],
    bonds: ["bonds", renderBonds],
  };

  const TAKES_ARGUMENT = new Set(["block", "tx", "account", "asset", "bond"]);

  async function route() {
    const token = ++renderToken;
    onBlock = null;
    if (ticker !== null) { clearInterval(ticker); ticker = null; }
    const raw = window.location.hash.replace(/^#\/?/, "");
    const slash = raw.indexOf("/");
    const name = slash < 0 ? raw : raw.slice(0, slash);
    const rest = slash < 0 ? null : raw.slice(slash + 1);
    const found = Object.prototype.hasOwnProperty.call(ROUTES, name) ? ROUTES[name] : null;
    if (found === null || (rest !== null && !TAKES_ARGUMENT.has(name)) || raw.length > 4 * MAX_SEGMENT) {
      showError("error", t("err_route"));
      return;
    }
    const [view, render] = found;
    let argument = null;
    if (rest !== null) {
      try {
        argument = decodeURIComponent(rest);
      } catch (error) {
        showError(view, t("err_malformed"));
        return;
      }
      if (argument.length > MAX_SEGMENT) {
        showError(view, t("err_malformed"));
        return;
      }
    }
    showLoading(view);
    try {
      const content = await render(argument, () => token === renderToken);
      if (token !== renderToken) return;
      if (typeof content === "string") {
        showError(view, content);
      } else {
        main.replaceChildren(...content.flat(Infinity).filter((part) => part !== null && part !== undefined));
        setView(view, "ready");
        window.scrollTo(0, 0);
        // A block decided while the view was reading the chain.
        if (onBlock && live.latest) onBlock(live.latest);
      }
    } catch (error) {
      if (token !== renderToken) return;
      showError(view, messageFor(error));
    }
  }

  // --- status ---------------------------------------------------------------------------------------

  const RECENT = 10;

  async function renderStatus(unused, current) {
    const [status, validatorsAnswer] = await batch([["chain_status", []], ["chain_validators", []]]);
    const chain = orThrow(status);
    const validators = orThrow(validatorsAnswer);
    cache.chain = chain;
    rememberNames(validators.validators);
    document.getElementById("chain-id").textContent = chain.chain_id;
    const head = chain.height;
    const heights = [];
    for (let h = head; h >= Math.max(0, head - RECENT + 1); h -= 1) heights.push(h);
    const certified = heights.filter((h) => h >= 1);
    const answers = await batch([
      ...heights.map((h) => ["chain_getBlock", [h]]),
      ...certified.map((h) => ["chain_getCertificate", [h]]),
    ]);
    const blocks = answers.slice(0, heights.length).filter((b) => !(b instanceof Error));
    const certificates = answers.slice(heights.length).filter((c) => !(c instanceof Error));

    const since = el("span", { id: "status-since" }, blocks.length ? formatAgo(blocks[0].timestamp_ms) : "—");
    const heightCell = el("span", { id: "status-height" }, formatCount(head));
    let lastTimestamp = blocks.length ? blocks[0].timestamp_ms : null;
    ticker = setInterval(() => { if (lastTimestamp !== null) since.textContent = formatAgo(lastTimestamp); }, 1000);

    const blockRows = el("tbody", {}, blocks.map(blockRow));
    const latest = el("div", { class: "scroll" }, el("table", { id: "latest-blocks" },
      el("thead", {}, el("tr", {}, [t("height"), t("time"), t("transactions"), t("proposer"), t("hash")].map(
        (h) => el("th", {}, h)))),
      blockRows));

    const signing = new SigningTally(validators, certificates);
    const validatorRows = el("tbody", {}, validators.validators.map((v) => signing.row(v)));
    const notes = el("p", { class: "note", id: "status-signing-note" }, signing.note());
    const viewNote = el("p", { class: "note", id: "status-view-changes" }, signing.viewNote());

    // Blocks are taken one notification at a time, in order. A notification may come before this view
    // has read the chain, or after the websocket was away: the blocks between what is shown and the
    // new one are read first, so the list never has a gap.
    let shownHeight = head;
    let queue = Promise.resolve();
    const takeBlock = async (header) => {
      if (!current() || header.height <= shownHeight) return;
      const from = Math.max(shownHeight + 1, header.height - RECENT + 1);
      const missing = [];
      for (let h = from; h < header.height; h += 1) missing.push(h);
      const answers = await batch([
        ...missing.map((h) => ["chain_getBlock", [h]]),
        ...missing.concat([header.height]).map((h) => ["chain_getCertificate", [h]]),
      ]);
      if (!current() || header.height <= shownHeight) return;
      const headers = answers.slice(0, missing.length).map(orThrow).concat([header]);
      for (const block of headers) blockRows.prepend(blockRow(block));
      while (blockRows.children.length > RECENT) blockRows.lastElementChild.remove();
      shownHeight = header.height;
      heightCell.textContent = formatCount(header.height);
      lastTimestamp = header.timestamp_ms;
      since.textContent = formatAgo(header.timestamp_ms);
      for (const certificate of answers.slice(missing.length)) {
        if (!(certificate instanceof Error)) signing.add(certificate);
      }
      for (const row of validatorRows.children) signing.update(row);
      notes.textContent = signing.note();
      viewNote.textContent = signing.viewNote();
    };
    onBlock = (header) => {
      // A failed read leaves the list as it was; the next notification fills the gap.
      queue = queue.then(() => takeBlock(header)).catch(() => undefined);
    };

    return [
      el("h1", {}, t("status_title")),
      facts([
        ["chain_id", t("chain_id"), chain.chain_id],
        ["height", t("height"), heightCell],
        ["since", t("since_last"), since],
        ["view", t("view"), el("span", { id: "status-view" }, String(chain.view))],
        ["role", t("role"), t("role_" + chain.role) + (chain.role === "validator" && !chain.voting
          ? " (" + t("not_voting") + ")" : "")],
        ["behind", t("behind"), String(chain.blocks_behind)],
        ["peers", t("peers"), String(chain.peers)],
      ]),
      section(t("latest_blocks"), latest),
      section(t("validators"), el("div", { class: "scroll" }, el("table", { id: "status-validators" },
        el("thead", {}, el("tr", {}, [t("name"), t("address"), t("signed")].map((h) => el("th", {}, h)))),
        validatorRows)), notes),
      section(t("view_changes"), viewNote),
    ];
  }

  // The view of the oldest and the newest of some certificates. A view outlives its height (the
  // primary of view v is validators[v mod n]), so a view above 0 says a change happened some time;
  // only a rise between blocks says one happened among them.
  function viewSpan(certificates) {
    if (certificates.length === 0) return { from: 0, to: 0 };
    const byHeight = certificates.slice().sort((a, b) => a.height - b.height);
    return { from: byHeight[0].view, to: byHeight[byHeight.length - 1].view };
  }

  function blockRow(block) {
    return el("tr", { "data-height": block.height },
      el("td", {}, blockLink(block.height)),
      el("td", {}, formatTime(block.timestamp_ms)),
      el("td", { class: "number" }, formatCount(block.transaction_count)),
      el("td", {}, block.height === 0 ? "—" : accountLink(block.proposer)),
      el("td", {}, link("#/block/" + safeSegment(block.hash), shortText(block.hash, 8), { class: "mono" })));
  }

  // How many of the recent certificates each validator signed, and the views they were decided in.
  class SigningTally {
    constructor(validators, certificates) {
      this.validators = validators;
      this.certificates = [];
      for (const certificate of certificates) this.add(certificate);
    }

    add(certificate) {
      this.certificates.unshift(certificate);
      this.certificates.sort((a, b) => b.height - a.height);
      this.certificates.length = Math.min(this.certificates.length, RECENT);
    }

    signedBy(address) {
      return this.certificates.filter((c) => c.signatures.some((s) => s.validator === address)).length;
    }

    row(validator) {
      return el("tr", { "data-validator": validator.address },
        el("td", {}, validator.name),
        el("td", {}, accountLink(validator.address)),
        el("td", { class: "signed number" }, this.signedBy(validator.address) + " / " + this.certificates.length));
    }

    update(row) {
      const cell = row.querySelector(".signed");
      cell.textContent = this.signedBy(row.getAttribute("data-validator")) + " / " + this.certificates.length;
    }

    note() {
      return t("signed_note", { n: this.certificates.length, q: this.validators.quorum });
    }

    viewNote() {
      const views = viewSpan(this.certificates);
      return views.from === views.to
        ? t("view_steady", { v: views.to, n: this.certificates.length })
        : t("view_moved", { a: views.from, b: views.to, n: this.certificates.length });
    }
  }

  // --- a block ----------------------------------------------------------------------------------------

  const MAX_TRANSACTIONS_SHOWN = 500;

  async function renderBlock(argument) {
    if (argument === null || !(HEIGHT_PATTERN.test(argument) || HASH_PATTERN.test(argument))) {
      return t("err_block_param", { v: argument === null ? "" : argument });
    }
    const chain = await chainInfo();
    const key = HEIGHT_PATTERN.test(argument) ? Number(argument) : argument.toLowerCase();
    let block;
    try {
      block = await call("chain_getBlock", [key, true]);
    } catch (error) {
      if (error instanceof RpcFailure && error.code === -32020) {
        return typeof key === "number" ? t("err_no_block", { v: key, h: error.data.head })
          : t("err_no_block_hash", { v: key });
      }
      throw error;
    }
    let certificateView;
    try {
      const certificate = await call("chain_getCertificate", [block.height]);
      const [validators] = await batch([["chain_validators", [block.height]]]);
      if (!(validators instanceof Error)) rememberNames(validators.validators);
      certificateView = [
        facts([["view", t("view"), String(certificate.view)],
          ["quorum", t("quorum"), String(certificate.quorum)]]),
        table("block-signers", [t("name"), t("address")], certificate.signatures.map((s) =>
          el("tr", { "data-validator": s.validator }, el("td", {}, s.name), el("td", {}, accountLink(s.validator))))),
      ];
    } catch (error) {
      if (!(error instanceof RpcFailure) || error.code !== -32022) throw error;
      certificateView = [el("p", { class: "note", id: "block-signers" }, t("genesis_certificate"))];
    }
    const shown = block.transactions.slice(0, MAX_TRANSACTIONS_SHOWN);
    const rows = [];
    for (const transaction of shown) rows.push(await transactionRow(transaction));
    return [
      el("h1", {}, t("block_title", { h: "" }), el("span", { id: "block-height" }, formatCount(block.height))),
      facts([
        ["hash", t("hash"), el("span", { id: "block-hash", class: "mono" }, block.hash)],
        ["time", t("time"), formatTime(block.timestamp_ms)],
        ["proposer", t("proposer"), block.height === 0 ? "—" : accountLink(block.proposer, true)],
        ["parent", t("parent"), block.height === 0 ? "—" : link("#/block/" + (block.height - 1), block.parent_hash,
          { class: "mono" })],
        ["state_root", t("state_root"), el("span", { class: "mono" }, block.state_root)],
        ["transaction_root", t("transaction_root"), el("span", { class: "mono" }, block.transaction_root)],
        ["next_validators_hash", t("next_validators_hash"), el("span", { class: "mono" }, block.next_validators_hash)],
        ["chain_id", t("chain_id"), chain.chain_id],
      ]),
      section(t("certificate"), ...certificateView),
      section(t("transactions") + " (" + formatCount(block.transaction_count) + ")",
        shown.length < block.transactions.length
          ? el("p", { class: "note" }, t("first_of", { n: shown.length, m: block.transactions.length })) : null,
        table("block-transactions", [t("hash"), t("kind"), t("sender"), t("summary")], rows, t("none"))),
    ];
  }

  async function transactionRow(transaction) {
    return el("tr", { "data-tx": transaction.hash },
      el("td", {}, txLink(transaction.hash)),
      el("td", {}, kindLabel(transaction.kind)),
      el("td", {}, accountLink(transaction.sender)),
      el("td", {}, await summary(transaction)));
  }

  // The amount a transaction moves, in the asset it is counted in, or null.
  async function amountOf(transaction) {
    const body = transaction.body;
    if (["transfer", "mint", "burn"].includes(transaction.kind)) {
      const asset = await assetInfo(body.asset);
      return { value: body.amount, decimals: asset ? asset.decimals : 0, symbol: body.asset };
    }
    if (transaction.kind === "spend_proceeds" || transaction.kind === "settle_trade") {
      const bond = await bondInfo(body.bond);
      return { value: body.amount, decimals: bond ? bond.settlement_decimals : 0, symbol: bond ? bond.settlement : "" };
    }
    if (transaction.kind === "issue_asset") {
      return { value: body.supply, decimals: body.decimals, symbol: body.asset };
    }
    if (transaction.kind === "subscribe") return { value: body.units, decimals: 0, symbol: body.bond };
    return null;
  }

  async function summary(transaction) {
    const amount = await amountOf(transaction);
    const body = transaction.body;
    const counterparty = body.recipient || body.account || body.buyer || null;
    return el("span", {}, amount ? money(amount.value, amount.decimals, amount.symbol) : null,
      counterparty ? [" → ", accountLink(counterparty)] : null,
      !amount && (body.asset || body.bond) ? (body.asset || body.bond) : null);
  }

  // --- a transaction ------------------------------------------------------------------------------------

  async function renderTransaction(argument, isCurrent) {
    if (argument === null || !HASH_PATTERN.test(argument)) return t("err_tx_param", { v: argument || "" });
    const hash = argument.toLowerCase();
    await chainInfo();
    let transaction;
    try {
      transaction = await call("chain_getTransaction", [hash]);
    } catch (error) {
      if (!(error instanceof RpcFailure)) throw error;
      if (error.code === -32021 && error.data.pending) {
        // Look again when a block is decided, and draw the page again only once the transaction is
        // no longer pending (final, or dropped): a pending page does not flicker at every block.
        const seen = live.latest ? live.latest.height : 0;
        let looking = false;
        onBlock = (header) => {
          if (header.height <= seen || looking) return;
          looking = true;
          call("chain_getTransaction", [hash]).then(() => true, (failure) => !(failure instanceof Unreachable
            || (failure instanceof RpcFailure && failure.code === -32021 && failure.data.pending)))
            .then((changed) => {
              looking = false;
              if (changed && isCurrent()) route();
            });
        };
        return [el("h1", {}, t("tx_title")), facts([
          ["hash", t("hash"), el("span", { class: "mono" }, hash)],
          ["status", t("status"), t("st_pending")],
        ])];
      }
      if (error.code === -32021) return t("err_no_tx", { v: hash });
      if (error.code === -32023) {
        return [el("h1", {}, t("tx_title")), facts([
          ["hash", t("hash"), el("span", { class: "mono" }, hash)],
          ["status", t("status"), t("st_dropped") + ": " + (error.data.message || error.data.rule || "")],
        ])];
      }
      throw error;
    }
    const body = transaction.body;
    const amount = await amountOf(transaction);
    const rows = [
      ["kind", t("kind"), kindLabel(transaction.kind)],
      ["status", t("status"), t("st_final")],
      ["block", t("block"), [blockLink(transaction.block_height), " · " + t("index") + " " + transaction.index]],
      ["sender", t("sender"), accountLink(transaction.sender, true)],
    ];
    if (body.recipient) rows.push(["recipient", t("recipient"), accountLink(body.recipient, true)]);
    if (body.account) rows.push(["account", t("account"), accountLink(body.account, true)]);
    if (amount) rows.push(["amount", t("amount"), money(amount.value, amount.decimals, amount.symbol)]);
    if (body.asset) rows.push(["asset", t("asset"), assetLink(body.asset)]);
    if (body.bond) rows.push(["bond", t("nav_bonds"), link("#/bond/" + safeSegment(body.bond), body.bond)]);
    if (transaction.kind === "transfer") rows.push(["memo", t("memo"), el("span", { class: "memo" }, body.memo)]);
    rows.push(["nonce", t("nonce"), String(transaction.nonce)]);
    rows.push(["size", t("size"), t("bytes", { n: transaction.size })]);
    rows.push(["hash", t("hash"), el("span", { class: "mono" }, transaction.hash)]);
    const shown = new Set(["recipient", "account", "asset", "bond", "memo", amount ? "amount" : null]);
    const details = Object.entries(body).filter(([name]) => !shown.has(name)).map(([name, value]) =>
      el("tr", {}, el("th", {}, name), el("td", { class: "mono" }, detailValue(value))));
    return [
      el("h1", {}, t("tx_title")),
      facts(rows),
      section(t("details"), table("tx-body", [t("name"), t("details")], details, t("none"))),
    ];
  }

  function detailValue(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "object") return JSON.stringify(value);
    if (typeof value === "string" && cache.chain && value.startsWith(cache.chain.address_prefix + "1")) {
      return accountLink(value, true);
    }
    return String(value);
  }

  // --- an account ---------------------------------------------------------------------------------------

  async function renderAccount(argument, current) {
    const chain = await chainInfo();
    if (argument === null || argument === "") return t("err_no_address");
    let account;
    try {
      account = await call("account_get", { address: argument });
    } catch (error) {
      if (error instanceof RpcFailure && error.code === -32602) {
        return t("err_bad_address", { v: argument, detail: error.data.reason || error.message });
      }
      throw error;
    }
    let balances = account.balances;
    if (account.more_balances) {
      balances = [];
      let cursor = null;
      do {
        const page = await call("account_getBalances", { address: account.address, cursor: cursor, limit: 1000 });
        balances = balances.concat(page.balances);
        cursor = page.next_cursor;
      } while (cursor !== null && current() && balances.length < 10000);
    }
    const balanceRows = balances.map((b) => el("tr", { "data-asset": b.asset },
      el("td", {}, assetLink(b.asset)),
      el("td", { class: "number" }, money(b.balance, b.decimals, b.asset))));
    const historyBody = el("tbody", {});
    const more = el("button", { id: "history-more", type: "button" }, t("more"));
    let cursor = null;
    const loadPage = async () => {
      more.disabled = true;
      const page = await call("account_getTransactions", { address: account.address, cursor: cursor, limit: 20 });
      if (!current()) return;
      for (const transaction of page.transactions) {
        historyBody.append(el("tr", { "data-tx": transaction.hash },
          el("td", {}, blockLink(transaction.block_height)),
          el("td", {}, txLink(transaction.hash)),
          el("td", {}, kindLabel(transaction.kind)),
          el("td", {}, await summary(transaction))));
      }
      cursor = page.next_cursor;
      more.hidden = cursor === null;
      more.disabled = false;
    };
    more.addEventListener("click", () => {
      loadPage().catch((error) => { more.disabled = false; more.after(el("p", { class: "message error", role: "alert" }, messageFor(error))); });
    });
    await loadPage();
    const history = historyBody.children.length === 0
      ? el("p", { id: "history", class: "empty" }, t("no_history"))
      : el("div", { class: "scroll" }, el("table", { id: "history" },
        el("thead", {}, el("tr", {}, [t("block"), t("hash"), t("kind"), t("summary")].map((h) => el("th", {}, h)))),
        historyBody));
    const name = cache.names.get(account.address);
    return [
      el("h1", {}, t("account_title")),
      facts([
        ["address", t("address"), el("span", { id: "account-address", class: "mono" }, account.address)],
        name ? ["name", t("name"), name] : null,
        ["roles", t("roles"), account.roles.length ? account.roles.join(", ") : "—"],
        ["nonce", t("nonce"), String(account.nonce)],
        ["chain_id", t("chain_id"), chain.chain_id],
      ]),
      section(t("balances"), table("balances", [t("asset"), t("balance")], balanceRows, t("no_balances"))),
      section(t("history"), history, more),
    ];
  }

  // --- assets and bonds -----------------------------------------------------------------------------------

  async function renderAsset(argument, current) {
    if (argument === null || !ASSET_PATTERN.test(argument)) return t("err_bad_asset", { v: argument || "" });
    await chainInfo();
    const [assetAnswer, bondAnswer] = await batch([["asset_get", [argument]], ["bond_get", [argument]]]);
    if (assetAnswer instanceof RpcFailure && assetAnswer.code === -32024) return t("err_no_asset", { v: argument });
    const asset = orThrow(assetAnswer);
    cache.assets.set(asset.id, asset);
    const holders = await holderList("holders", asset.id, asset.decimals, current);
    return [
      el("h1", {}, t("asset_title", { a: asset.id })),
      bondAnswer instanceof Error ? null
        : el("p", { class: "note" }, link("#/bond/" + safeSegment(asset.id), t("is_bond"))),
      facts([
        ["name", t("name"), asset.name],
        ["supply", t("supply"), money(asset.supply, asset.decimals, asset.id)],
        ["holders", t("holders"), formatCount(asset.holders)],
        ["decimals", t("decimals"), String(asset.decimals)],
        ["issuer", t("issuer"), accountLink(asset.issuer, true)],
        ["registrar", t("registrar"), accountLink(asset.registrar, true)],
        ["policy", t("policy"), asset.policy === "open" ? t("policy_open") : t("policy_restricted")],
        ["reissuable", t("reissuable"), asset.reissuable ? t("yes") : t("no")],
        ["cap", t("cap"), asset.cap === null ? t("no_cap") : money(asset.cap, asset.decimals, asset.id)],
        ["expiry", t("expiry"), asset.expiry_ms === null ? t("never") : formatTime(asset.expiry_ms)],
        ["expired", t("expired"), asset.expired ? t("yes") : t("no")],
        ["lapsed", t("lapsed"), money(asset.lapsed, asset.decimals, asset.id)],
      ]),
      section(t("holders"), holders),
    ];
  }

  // A page of an asset's holders with a button for the next.
  async function holderList(id, asset, decimals, current) {
    const body = el("tbody", {});
    const more = el("button", { id: id + "-more", type: "button" }, t("more"));
    let cursor = null;
    let height = null;
    const loadPage = async () => {
      more.disabled = true;
      const params = { asset: asset, cursor: cursor, limit: 50 };
      if (height !== null) params.height = height;
      const page = await call("asset_getHolders", params);
      if (!current()) return;
      height = page.height;
      for (const holder of page.holders) {
        body.append(el("tr", { "data-holder": holder.address },
          el("td", {}, accountLink(holder.address)),
          el("td", { class: "number" }, money(holder.balance, decimals, asset))));
      }
      cursor = page.next_cursor;
      more.hidden = cursor === null;
      more.disabled = false;
    };
    more.addEventListener("click", () => { loadPage().catch((error) => { more.after(el("p", { class: "message error", role: "alert" }, messageFor(error))); }); });
    await loadPage();
    return el("div", {}, el("div", { class: "scroll" }, el("table", { id: id },
      el("thead", {}, el("tr", {}, [t("address"), t("balance")].map((h) => el("th", {}, h)))), body)), more);
  }

  async function renderBond(argument, current) {
    if (argument === null || !ASSET_PATTERN.test(argument)) return t("err_bad_asset", { v: argument || "" });
    await chainInfo();
    const [bondAnswer, offeringAnswer, proceedsAnswer] = await batch([
      ["bond_get", [argument]],
      ["offering_get", { bond: argument, limit: 100 }],
      ["bond_getUseOfProceeds", { bond: argument, limit: 100 }],
    ]);
    if (bondAnswer instanceof RpcFailure && bondAnswer.code === -32024) return t("err_no_asset", { v: argument });
    if (bondAnswer instanceof RpcFailure && bondAnswer.code === -32025) return t("err_not_bond", { v: argument });
    const bond = orThrow(bondAnswer);
    cache.bonds.set(bond.id, bond);
    const settle = (value) => money(value, bond.settlement_decimals, bond.settlement);
    const schedule = bond.payments.map((payment) => el("tr", { "data-payment": payment.index },
      el("td", {}, String(payment.index + 1)),
      el("td", {}, payment.kind === "coupon" ? t("coupon") : t("redemption")),
      el("td", {}, formatTime(payment.time_ms)),
      el("td", { class: "number" }, settle(payment.amount_per_unit)),
      el("td", { class: "number" }, settle(payment.required)),
      el("td", { class: "status", "data-status": payment.status }, t("pay_" + payment.status))));
    const holders = await holderList("bond-holders", bond.id, 0, current);
    let offering;
    if (offeringAnswer instanceof RpcFailure && offeringAnswer.code === -32026) {
      offering = el("p", { class: "empty" }, t("no_offering"));
    } else {
      const answer = orThrow(offeringAnswer);
      const terms = answer.offering;
      offering = [
        facts([
          ["status", t("status"), terms.phase],
          ["units", t("units"), formatCount(terms.units)],
          ["price", t("price"), settle(terms.price)],
          ["opens", t("opens"), formatTime(terms.start_ms)],
          ["closes", t("closes"), formatTime(terms.end_ms)],
          ["subscribed", t("subscribed"), formatCount(terms.subscribed)],
          ["allotted", t("allotted"), formatCount(terms.allotted)],
          ["unsold", t("unsold"), formatCount(terms.unsold)],
          ["refunded", t("refunded"), settle(terms.refunded)],
          ["raised", t("raised"), settle(terms.proceeds)],
        ]),
        table("bond-subscriptions", [t("subscriber"), t("asked"), t("paid"), t("allotted"), t("refunded")],
          answer.subscriptions.map((s) => el("tr", { "data-subscriber": s.subscriber },
            el("td", {}, accountLink(s.subscriber)),
            el("td", { class: "number" }, formatCount(s.units)),
            el("td", { class: "number" }, settle(s.paid)),
            el("td", { class: "number" }, s.allotted === null ? "—" : formatCount(s.allotted)),
            el("td", { class: "number" }, s.refunded === null ? "—" : settle(s.refunded)))), t("none")),
      ];
    }
    let proceeds = null;
    if (!(proceedsAnswer instanceof Error)) {
      proceeds = [
        facts([
          ["raised", t("raised"), settle(proceedsAnswer.raised)],
          ["spent", t("spent"), settle(proceedsAnswer.spent)],
          ["left", t("left"), settle(proceedsAnswer.left)],
        ]),
        table("bond-purposes", [t("purpose"), t("spent")], proceedsAnswer.purposes.map((p) =>
          el("tr", {}, el("td", {}, p.purpose), el("td", { class: "number" }, settle(p.spent)))), t("none")),
      ];
    }
    return [
      el("h1", {}, t("bond_title", { a: bond.id })),
      el("div", { id: "bond-terms" }, facts([
        ["name", t("name"), bond.name],
        ["settlement", t("settlement"), assetLink(bond.settlement)],
        ["face", t("face"), settle(bond.face)],
        ["rate", t("rate"), bond.rate_percent],
        ["frequency", t("frequency"), String(bond.frequency)],
        ["issue", t("issue_date"), formatTime(bond.issue_ms)],
        ["maturity", t("maturity"), formatTime(bond.maturity_ms)],
        ["supply", t("supply"), formatCount(bond.supply)],
        ["holders", t("holders"), formatCount(bond.holders)],
        ["issuer", t("issuer"), accountLink(bond.issuer, true)],
        ["paying", t("paying"), accountLink(bond.paying, true)],
        ["paying_balance", t("paying_balance"), settle(bond.paying_balance)],
        ["proceeds_account", t("proceeds_account"), accountLink(bond.proceeds, true)],
        ["use_of_proceeds", t("use_of_proceeds"), bond.use_of_proceeds],
        ["green", t("green"), bond.green ? t("yes") : t("no")],
        ["redeemed", t("redeemed"), bond.redeemed ? t("yes") : t("no")],
        ["asset", t("asset"), assetLink(bond.id)],
      ])),
      section(t("schedule"), table("bond-schedule",
        ["#", t("payment_kind"), t("time"), t("per_unit"), t("required"), t("status")], schedule, t("none"))),
      section(t("holders"), el("div", { id: "bond-holders-section" }, holders)),
      section(t("offering"), el("div", { id: "bond-offering" }, offering)),
      section(t("use_of_proceeds"), el("div", { id: "bond-proceeds" }, proceeds || "—")),
    ];
  }

  async function renderAssets() {
    await chainInfo();
    const page = await call("asset_list", { limit: 1000 });
    return [
      el("h1", {}, t("assets_title")),
      table("asset-list", [t("asset"), t("name"), t("supply"), t("holders"), t("policy")],
        page.assets.map((a) => el("tr", { "data-asset": a.id },
          el("td", {}, assetLink(a.id)),
          el("td", {}, a.name),
          el("td", { class: "number" }, money(a.supply, a.decimals, null)),
          el("td", { class: "number" }, formatCount(a.holders)),
          el("td", {}, a.policy === "open" ? t("policy_open") : t("policy_restricted")))), t("no_assets")),
    ];
  }

  async function renderBonds() {
    await chainInfo();
    const page = await call("bond_list", { limit: 100 });
    return [
      el("h1", {}, t("bonds_title")),
      table("bond-list", [t("asset"), t("name"), t("rate"), t("maturity"), t("supply"), t("redeemed")],
        page.bonds.map((b) => el("tr", { "data-asset": b.id },
          el("td", {}, link("#/bond/" + safeSegment(b.id), b.id)),
          el("td", {}, b.name),
          el("td", {}, b.rate_percent),
          el("td", {}, formatTime(b.maturity_ms)),
          el("td", { class: "number" }, formatCount(b.supply)),
          el("td", {}, b.redeemed ? t("yes") : t("no")))), t("no_bonds")),
    ];
  }

  // --- validators -------------------------------------------------------------------------------------

  const DECIDED_SHOWN = 20;

  async function renderValidators() {
    const [validatorsAnswer, proposalsAnswer] = await batch([
      ["chain_validators", []],
      ["governance_getProposals", { status: "open", limit: 100 }],
    ]);
    const validators = orThrow(validatorsAnswer);
    rememberNames(validators.validators);
    const proposals = proposalsAnswer instanceof Error ? [] : proposalsAnswer.proposals;
    const decided = await decidedProposals();
    const keyNames = new Map(validators.validators.map((v) => [v.public_key, v.name]));
    for (const proposal of proposals.concat(decided)) {
      for (const approval of proposal.approvals) if (approval.name) keyNames.set(approval.public_key, approval.name);
    }
    const latest = decided.slice(0, DECIDED_SHOWN);
    return [
      el("h1", {}, t("validators_title", { h: formatCount(validators.height) })),
      facts([
        ["quorum", t("quorum"), String(validators.quorum)],
        ["faults", t("faults"), String(validators.fault_tolerance)],
      ]),
      table("validators", ["#", t("name"), t("address"), t("public_key")], validators.validators.map((v) =>
        el("tr", { "data-validator": v.address },
          el("td", {}, String(v.index)),
          el("td", {}, v.name),
          el("td", {}, accountLink(v.address)),
          el("td", { class: "mono" }, shortText(v.public_key, 10))))),
      section(t("proposals"), table("proposals", ["#", t("change"), t("proposer"), t("approvals"), t("expires_at")],
        proposals.map((p) => el("tr", { "data-proposal": p.id },
          el("td", {}, String(p.id)),
          el("td", { class: "change" }, describeChange(p.change, keyNames)),
          el("td", {}, p.proposer_name || shortText(p.proposer, 10)),
          el("td", {}, p.approvals.length + " / " + p.quorum),
          el("td", {}, formatCount(p.expires_height)))), t("no_proposals"))),
      section(t("decided_proposals"),
        table("decided-proposals", ["#", t("change"), t("proposer"), t("approvals"), t("outcome")],
          latest.map((p) => el("tr", { "data-proposal": p.id, "data-status": p.status },
            el("td", {}, String(p.id)),
            el("td", { class: "change" }, describeChange(p.change, keyNames)),
            el("td", {}, p.proposer_name || shortText(p.proposer, 10)),
            el("td", {}, String(p.approvals.length)),
            el("td", { class: "outcome" }, p.status === "approved"
              ? t("approved_from", { h: formatCount(p.activation_height) })
              : t("expired_at", { h: formatCount(p.expires_height) })))), t("no_decided_proposals")),
        decided.length > latest.length
          ? el("p", { class: "note" }, t("latest_of", { n: latest.length, m: formatCount(decided.length) })) : null),
    ];
  }

  // Approved and expired proposals, newest first. They are few (each is a validator's signed act),
  // so every page is read; a failed read shows what came before it.
  async function decidedProposals() {
    const found = [];
    for (const status of ["approved", "expired"]) {
      let cursor = null;
      for (let page = 0; page < 10; page += 1) {
        const params = { status: status, limit: 1000 };
        if (cursor !== null) params.cursor = cursor;
        const [answer] = await batch([["governance_getProposals", params]]);
        if (answer instanceof Error) break;
        found.push(...answer.proposals);
        cursor = answer.next_cursor;
        if (cursor === null || cursor === undefined) break;
      }
    }
    return found.sort((a, b) => b.id - a.id);
  }

  // A proposed change in words; keys are named by the validator that holds them when known.
  function describeChange(change, keyNames) {
    const keyName = (key) => keyNames.get(key) || shortText(key, 8);
    switch (change.kind) {
      case "add_validator":
        return t("ch_add_validator", { name: change.name, address: change.address, key: shortText(change.public_key, 8) });
      case "remove_validator":
        return t("ch_remove_validator", { name: keyName(change.public_key) });
      case "replace_key":
        return t(change.address ? "ch_replace_key_address" : "ch_replace_key",
          { name: keyName(change.old_key), key: shortText(change.new_key, 8), address: change.address });
      case "grant_issuer":
      case "revoke_issuer":
        return [t("ch_" + change.kind), " ", accountLink(change.account)];
      default:
        return el("span", { class: "mono" }, JSON.stringify(change));
    }
  }

  // --- search -----------------------------------------------------------------------------------------

  const searchForm = document.getElementById("search");
  const searchInput = document.getElementById("search-input");
  const searchMessage = document.getElementById("search-message");

  async function resolve(query) {
    const value = query.trim();
    if (value === "") return { message: t("search_empty") };
    if (value.length > MAX_SEGMENT) return { message: t("search_too_long") };
    const chain = await chainInfo();
    if (HEIGHT_PATTERN.test(value)) {
      try {
        await call("chain_getBlock", [Number(value)]);
        return { route: "#/block/" + Number(value) };
      } catch (error) {
        if (error instanceof RpcFailure && error.code === -32020) {
          return { message: t("err_no_block", { v: value, h: error.data.head }) };
        }
        throw error;
      }
    }
    if (HASH_PATTERN.test(value)) {
      const hash = value.toLowerCase();
      const [transaction, block] = await batch([["chain_getTransaction", [hash]], ["chain_getBlock", [hash]]]);
      if (!(transaction instanceof Error) || (transaction instanceof RpcFailure && transaction.data.pending)) {
        return { route: "#/tx/" + hash };
      }
      if (!(block instanceof Error)) return { route: "#/block/" + hash };
      return { message: t("search_no_hash", { v: hash }) };
    }
    const lower = value.toLowerCase();
    if (lower.startsWith(chain.address_prefix + "1")) {
      try {
        const account = await call("account_get", { address: value });
        return { route: "#/account/" + safeSegment(account.address) };
      } catch (error) {
        if (error instanceof RpcFailure && error.code === -32602) {
          return { message: t("err_bad_address", { v: value, detail: error.data.reason || error.message }) };
        }
        throw error;
      }
    }
    const candidates = [value, value.toUpperCase()].filter((v, i, all) => ASSET_PATTERN.test(v) && all.indexOf(v) === i);
    for (const id of candidates) {
      const [asset, bond] = await batch([["asset_get", [id]], ["bond_get", [id]]]);
      if (!(asset instanceof Error)) return { route: (bond instanceof Error ? "#/asset/" : "#/bond/") + safeSegment(id) };
    }
    if (candidates.length) return { message: t("err_no_asset", { v: candidates[candidates.length - 1]}) };
    return { message: t("search_help", { p: chain.address_prefix }) };
  }

  searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    searchMessage.textContent = "";
    searchForm.setAttribute("data-state", "searching");
    try {
      const found = await resolve(searchInput.value);
      if (found.route) {
        searchInput.value = "";
        if (window.location.hash === found.route) route(); else window.location.hash = found.route;
      } else {
        searchMessage.textContent = found.message;
      }
    } catch (error) {
      searchMessage.textContent = messageFor(error);
    } finally {
      searchForm.setAttribute("data-state", "done");
    }
  });

  // --- language -------------------------------------------------------------------------------------

  const langButton = document.getElementById("lang");

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t("brand");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.getAttribute("data-i18n"));
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-placeholder")));
    }
    langButton.textContent = lang === "ja" ? "English" : "日本語";
    langButton.setAttribute("lang", lang === "ja" ? "en" : "ja");
    setLive(live.connected);
  }

  langButton.addEventListener("click", () => {
    lang = lang === "ja" ? "en" : "ja";
    try { window.localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private browsing: not remembered */ }
    applyLanguage();
    route();
  });

  // --- live updates -----------------------------------------------------------------------------------

  const live = { socket: null, connected: false, retry: 1000, subscription: null, reconnecting: false, latest: null };
  const liveBadge = document.getElementById("live");

  function setLive(connected) {
    live.connected = connected;
    liveBadge.setAttribute("data-live", connected ? "on" : "off");
    liveBadge.querySelector(".text").textContent = t(connected ? "live_on" : "live_off");
  }

  function connect() {
    const url = new URL("/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      scheduleReconnect();
      return;
    }
    live.socket = socket;
    socket.addEventListener("open", () => {
      live.retry = 1000;
      socket.send(JSON.stringify({ jsonrpc: "2.0", id: "subscribe", method: "chain_subscribe", params: ["final_blocks"] }));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = parseJson(String(event.data)); } catch (error) { return; }
      if (message.id === "subscribe") {
        if (!message.result) {
          // Refused (the node is busy, say): try again later rather than stay connected and silent.
          socket.close();
          return;
        }
        live.subscription = message.result;
        setLive(true);
        // Back after a break: what was missed meanwhile, the status view reads again.
        if (live.reconnecting && main.getAttribute("data-view") === "status") route();
        live.reconnecting = false;
        return;
      }
      if (message.method === "chain_subscription" && message.params && message.params.result) {
        const header = message.params.result;
        if (!live.latest || header.height > live.latest.height) live.latest = header;
        if (cache.chain) cache.chain.height = Math.max(cache.chain.height, header.height);
        if (onBlock) onBlock(header);
      }
    });
    socket.addEventListener("close", () => {
      setLive(false);
      live.socket = null;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    const delay = live.retry;
    live.retry = Math.min(live.retry * 2, 30000);
    live.reconnecting = true;
    setTimeout(connect, delay);
  }

  // --- start ---------------------------------------------------------------------------------------

  // The page's number handling, for tests in the browser.
  window.MuraExplorer = Object.freeze({
    parseJson: parseJson,
    formatAmount: formatAmount,
    viewSpan: viewSpan,
    changeText: (change, keyNames) => el("span", {}, describeChange(change, new Map(Object.entries(keyNames)))).textContent,
  });

  window.addEventListener("hashchange", route);
  window.addEventListener("error", (event) => {
    showError(main.getAttribute("data-view") || "error", t("err_unexpected", { detail: event.message }));
  });
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    showError(main.getAttribute("data-view") || "error", messageFor(reason));
  });
  applyLanguage();
  route();
  connect();
})();
