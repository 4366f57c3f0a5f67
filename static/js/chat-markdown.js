// A small Markdown renderer and code highlighter for model output, which is untrusted text.
//
// Safety rule: every piece of the input reaches the page through document.createElement and textContent /
// createTextNode, never through innerHTML or any HTML parser, so markup in a reply is shown as text.
// Links are made only for http:, https: and mailto: addresses; anything else is shown as the text it was.
// Images are never loaded (they would leak that the page was read); they become links.
"use strict";

(function () {
  // --- Helpers -------------------------------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

  // The URL to put in href, or null when the address is not one we link to.
  function safeUrl(raw) {
    const text = String(raw || "").trim();
    if (!/^(https?:\/\/|mailto:)/i.test(text)) return null;
    try {
      const url = new URL(text);
      return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function link(href, label) {
    const anchor = el("a");
    anchor.href = href;
    anchor.rel = "noopener noreferrer nofollow";
    anchor.target = "_blank";
    if (typeof label === "string") anchor.textContent = label;
    return anchor;
  }

  function indentOf(line) {
    let width = 0;
    for (const ch of line) {
      if (ch === " ") width += 1;
      else if (ch === "\t") width += 4 - (width % 4);
      else break;
    }
    return width;
  }

  function dedent(line, width) {
    let removed = 0;
    let index = 0;
    while (index < line.length && removed < width) {
      if (line[index] === " ") removed += 1;
      else if (line[index] === "\t") removed += 4 - (removed % 4);
      else break;
      index += 1;
    }
    return line.slice(index);
  }

  const isBlank = (line) => /^\s*$/.test(line);

  // --- Inline ----------------------------------------------------------------------------------------------------
  // Each rule is a global regex; the earliest match wins, ties go to the rule listed first.
  // Spans stay within one line and a bounded length: unclosed markers (common while a reply streams) then
  // cost a short scan instead of one to the end of the text from every position.
  const INLINE_RULES = [
    ["code", /(`+)([^`\n](?:[^\n]{0,1000}?[^`\n])?)\1(?!`)/g],
    ["escape", /\\([!-/:-@[-`{-~])/g],
    ["image", /!\[([^\]\n]{0,500})\]\(\s*<?([^\s)>]{0,2048})>?(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?\s*\)/g],
    ["link", /\[((?:[^[\]\n]|\[[^[\]\n]*\]){0,500})\]\(\s*<?([^\s)>]{0,2048})>?(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?\s*\)/g],
    ["autolink", /<((?:https?:\/\/|mailto:)[^\s<>]{1,2048})>/gi],
    ["url", /\bhttps?:\/\/[^\s<>"'`]*[^\s<>"'`.,:;!?)\]}*_~]/gi],
    ["strong", /\*\*(?=\S)([^\n]{0,500}?\S)\*\*|(?<!\w)__(?=\S)([^\n]{0,500}?\S)__(?!\w)/g],
    ["strike", /~~(?=\S)([^\n]{0,500}?\S)~~/g],
    ["em", /\*(?=[^\s*])([^*\n]{0,500}?[^\s*])\*(?!\*)|(?<!\w)_(?=[^\s_])([^_\n]{0,500}?[^\s_])_(?!\w)/g],
    ["break", /\n/g],
  ];


  function renderInline(text, parent, inLink, options) {
    options = options || {};
    const cache = INLINE_RULES.map(() => null);
    let position = 0;
    while (position < text.length) {
      let best = null;
      let bestRule = -1;
      INLINE_RULES.forEach(([, regex], index) => {
        let found = cache[index];
        if (found === null || (found !== false && found.index < position)) {
          regex.lastIndex = position;
          found = regex.exec(text) || false;
          cache[index] = found;
        }
        if (found && (best === null || found.index < best.index)) {
          best = found;
          bestRule = index;
        }
      });
      if (best === null) break;
      if (best.index > position) parent.appendChild(document.createTextNode(text.slice(position, best.index)));
      appendInline(INLINE_RULES[bestRule][0], best, parent, inLink, options);
      position = best.index + best[0].length;
    }
    if (position < text.length) parent.appendChild(document.createTextNode(text.slice(position)));
  }

  function appendInline(kind, match, parent, inLink, options) {
    const source = match[0];
    switch (kind) {
      case "code": {
        let body = match[2];
        if (/^ .*[^ ].* $/.test(body)) body = body.slice(1, -1);
        parent.appendChild(el("code", "", body));
        return;
      }
      case "escape":
        parent.appendChild(document.createTextNode(match[1]));
        return;
      case "image":
      case "link":
      case "autolink":
      case "url": {
        const target = kind === "url" ? source : match[kind === "autolink" ? 1 : 2];
        const href = inLink ? null : safeUrl(target);
        if (href === null) {
          // Not a link we make: the reader sees exactly what the model wrote.
          parent.appendChild(document.createTextNode(source));
          return;
        }
        if (kind === "link") {
          const anchor = link(href);
          renderInline(match[1] || target, anchor, true, options);
          parent.appendChild(anchor);
        } else if (kind === "image") {
          parent.appendChild(link(href, `${options.imageLabel || "image"}: ${match[1] || target}`));
        } else {
          parent.appendChild(link(href, target));
        }
        return;
      }
      case "strong":
      case "strike":
      case "em": {
        const node = el(kind === "strike" ? "del" : kind);
        renderInline(match[1] !== undefined ? match[1] : match[2], node, inLink, options);
        parent.appendChild(node);
        return;
      }
      case "break":
        parent.appendChild(el("br"));
        return;
      default:
        parent.appendChild(document.createTextNode(source));
    }
  }

  // --- Blocks ------------------------------------------------------------------------------------------------------
  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}>/;
  const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
  const TABLE_SEPARATOR = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;

  function isTableStart(lines, index) {
    return (
      index + 1 < lines.length &&
      lines[index].includes("|") &&
      TABLE_SEPARATOR.test(lines[index + 1]) &&
      (lines[index + 1].includes("|") || splitRow(lines[index]).length > 1)
    );
  }

  function startsBlock(lines, index) {
    const line = lines[index];
    return (
      FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      LIST_ITEM.test(line) || isTableStart(lines, index)
    );
  }

  const MAX_DEPTH = 12; // quotes and lists nest this deep; deeper text is shown as it is

  function renderBlocks(lines, parent, options) {
    const depth = options.depth || 0;
    if (depth > MAX_DEPTH) {
      parent.appendChild(el("p", "", lines.join("\n")));
      return;
    }
    const inner = { ...options, depth: depth + 1 };
    let index = 0;
    while (index < lines.length) {
      const line = lines[index];
      if (isBlank(line)) {
        index += 1;
        continue;
      }
      let match = FENCE.exec(line);
      if (match) {
        const fence = match[1];
        const closing = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
        const body = [];
        index += 1;
        while (index < lines.length && !closing.test(lines[index])) {
          body.push(lines[index]);
          index += 1;
        }
        index += 1; // the closing fence; a reply still streaming may not have written it yet
        parent.appendChild(codeBlock(body.join("\n"), match[2], options));
        continue;
      }
      match = HEADING.exec(line);
      if (match) {
        const heading = el(`h${match[1].length}`);
        renderInline((match[2] || "").replace(/\s+#+$/, ""), heading, false, options);
        parent.appendChild(heading);
        index += 1;
        continue;
      }
      if (RULE.test(line)) {
        parent.appendChild(el("hr"));
        index += 1;
        continue;
      }
      if (QUOTE.test(line)) {
        const body = [];
        while (index < lines.length && QUOTE.test(lines[index])) {
          body.push(lines[index].replace(/^ {0,3}> ?/, ""));
          index += 1;
        }
        const quote = el("blockquote");
        renderBlocks(body, quote, inner);
        parent.appendChild(quote);
        continue;
      }
      if (LIST_ITEM.test(line)) {
        index = renderList(lines, index, parent, inner);
        continue;
      }
      if (isTableStart(lines, index)) {
        index = renderTable(lines, index, parent, options);
        continue;
      }
      const paragraph = [line.trim()];
      index += 1;
      while (index < lines.length && !isBlank(lines[index]) && !startsBlock(lines, index)) {
        paragraph.push(lines[index].trim());
        index += 1;
      }
      const p = el("p");
      renderInline(paragraph.join("\n"), p, false, options);
      parent.appendChild(p);
    }
  }

  function renderList(lines, start, parent, options) {
    const first = LIST_ITEM.exec(lines[start]);
    const indent = indentOf(first[1]);
    const ordered = /\d/.test(first[2]);
    const list = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) list.start = parseInt(first[2], 10);
    const items = [];
    let loose = false;
    let index = start;
    while (index < lines.length) {
      const line = lines[index];
      const match = LIST_ITEM.exec(line);
      const current = items[items.length - 1];
      if (match && (!current || indentOf(match[1]) < current.contentIndent)) {
        if (/\d/.test(match[2]) !== ordered || indentOf(match[1]) < indent) break;
        items.push({ lines: [match[3] || ""], contentIndent: indentOf(match[1]) + match[2].length + 1 });
        index += 1;
        continue;
      }
      if (isBlank(line)) {
        let next = index + 1;
        while (next < lines.length && isBlank(lines[next])) next += 1;
        const following = next < lines.length ? lines[next] : null;
        const sibling = following !== null && LIST_ITEM.exec(following);
        if (following !== null && (indentOf(following) >= current.contentIndent ||
            (sibling && indentOf(sibling[1]) === indent && /\d/.test(sibling[2]) === ordered))) {
          for (let blank = index; blank < next; blank += 1) current.lines.push("");
          loose = true;
          index = next;
          continue;
        }
        break;
      }
      if (indentOf(line) >= current.contentIndent || (indentOf(line) > indent && !match)) {
        current.lines.push(dedent(line, current.contentIndent));
        index += 1;
        continue;
      }
      if (!match && !startsBlock(lines, index)) {
        current.lines.push(line.trim()); // a lazy continuation of the item's paragraph
        index += 1;
        continue;
      }
      break;
    }
    for (const item of items) {
      const li = el("li");
      renderBlocks(item.lines, li, options);
      if (!loose) {
        // A tight list shows its items' text without paragraph margins.
        for (const child of Array.from(li.children)) {
          if (child.tagName === "P") {
            while (child.firstChild) li.insertBefore(child.firstChild, child);
            child.remove();
          }
        }
      }
      list.appendChild(li);
    }
    parent.appendChild(list);
    return index;
  }

  function splitRow(line) {
    let text = line.trim();
    if (text.startsWith("|")) text = text.slice(1);
    if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
    return text.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
  }

  function renderTable(lines, start, parent, options) {
    const header = splitRow(lines[start]);
    const aligns = splitRow(lines[start + 1]).map((cell) => {
      if (cell.startsWith(":") && cell.endsWith(":")) return "align-center";
      if (cell.endsWith(":")) return "align-right";
      return "";
    });
    const table = el("table");
    const head = el("thead");
    const headRow = el("tr");
    header.forEach((cell, column) => {
      const th = el("th", aligns[column] || "");
      renderInline(cell, th, false, options);
      headRow.appendChild(th);
    });
    head.appendChild(headRow);
    table.appendChild(head);
    const body = el("tbody");
    let index = start + 2;
    while (index < lines.length && !isBlank(lines[index]) && lines[index].includes("|")) {
      const row = el("tr");
      const cells = splitRow(lines[index]);
      for (let column = 0; column < header.length; column += 1) {
        const td = el("td", aligns[column] || "");
        renderInline(cells[column] || "", td, false, options);
        row.appendChild(td);
      }
      body.appendChild(row);
      index += 1;
    }
    table.appendChild(body);
    parent.appendChild(table);
    return index;
  }

  function codeBlock(code, language, options) {
    const wrapper = el("div", "code-block");
    const head = el("div", "code-head");
    head.appendChild(el("span", "code-lang", language || ""));
    const copy = el("button", "copy-code", options.copyLabel || "Copy");
    copy.type = "button";
    head.appendChild(copy);
    const pre = el("pre");
    pre.tabIndex = 0;  // a code block wider than the screen scrolls: the keyboard must reach it (WCAG 2.1.1)
    const codeNode = el("code");
    if (language) codeNode.dataset.language = language;
    codeNode.appendChild(highlight(code, language));
    pre.appendChild(codeNode);
    wrapper.append(head, pre);
    return wrapper;
  }

  // --- Highlighter ----------------------------------------------------------------------------------------------------
  // A tokenizer that knows comments, strings, numbers and keywords of common languages. Good enough to
  // read code at a glance; it does not parse.
  const words = (text) => new Set(text.split(/\s+/).filter(Boolean));
  const C_LIKE = { line: ["//"], block: [["/*", "*/"]], strings: ['"', "'"] };
  const LANGUAGES = {
    js: {
      ...C_LIKE, strings: ['"', "'", "`"],
      keywords: words(`break case catch class const continue debugger default delete do else export extends finally
        for function if import in instanceof let new return super switch this throw try typeof var void while with
        yield async await of static get set from as interface type enum implements private public protected
        readonly declare namespace abstract`),
      literals: words("true false null undefined NaN Infinity"),
    },
    python: {
      line: ["#"], block: [], strings: ['"""', "'''", '"', "'"],
      keywords: words(`and as assert async await break class continue def del elif else except finally for from
        global if import in is lambda nonlocal not or pass raise return try while with yield match case print`),
      literals: words("True False None self cls"),
    },
    shell: {
      line: ["#"], block: [], strings: ['"', "'"],
      keywords: words(`if then else elif fi for while until do done case esac in function return export local
        readonly echo cd exit set unset source sudo`),
      literals: words("true false"),
    },
    c: {
      ...C_LIKE,
      keywords: words(`auto break case char const continue default do double else enum extern float for goto if
        inline int long register return short signed sizeof static struct switch typedef union unsigned void
        volatile while class namespace template typename public private protected virtual override new delete
        using try catch throw this operator bool constexpr nullptr include define ifdef ifndef endif pragma
        package import func go defer chan map range select var type interface fn let mut impl trait pub use mod
        crate match loop where as ref self Self dyn async await move unsafe extends implements final abstract
        boolean byte synchronized throws instanceof super String`),
      literals: words("true false NULL null nil None Some Ok Err"),
    },
    sql: {
      line: ["--"], block: [["/*", "*/"]], strings: ["'", '"'], caseInsensitive: true,
      keywords: words(`select from where and or not insert into values update set delete create table drop alter
        index view join left right inner outer full on as group by order having limit offset union all distinct
        primary key foreign references default null is in exists between like case when then else end asc desc
        with returning begin commit rollback transaction`),
      literals: words("true false null"),
    },
    css: {
      line: [], block: [["/*", "*/"]], strings: ['"', "'"],
      keywords: words("important media supports import keyframes font-face root"),
      literals: words("none auto inherit initial unset"),
    },
    markup: { line: [], block: [["<!--", "-->"]], strings: ['"', "'"], keywords: words(""), literals: words("") },
    json: { line: [], block: [], strings: ['"'], keywords: words(""), literals: words("true false null") },
  };
  const ALIASES = {
    javascript: "js", jsx: "js", ts: "js", typescript: "js", tsx: "js", mjs: "js", node: "js",
    py: "python", python3: "python", py3: "python",
    sh: "shell", bash: "shell", zsh: "shell", console: "shell", shellscript: "shell",
    h: "c", cpp: "c", "c++": "c", cc: "c", hpp: "c", cxx: "c", java: "c", cs: "c", csharp: "c", go: "c",
    golang: "c", rust: "c", rs: "c", kotlin: "c", kt: "c", swift: "c", php: "c", scala: "c", dart: "c",
    html: "markup", xml: "markup", svg: "markup", vue: "markup",
    scss: "css", less: "css", postgres: "sql", postgresql: "sql", mysql: "sql", sqlite: "sql", jsonc: "json",
  };
  const GENERIC = {
    line: ["//", "#"], block: [["/*", "*/"]], strings: ['"', "'", "`"],
    keywords: new Set([...LANGUAGES.js.keywords, ...LANGUAGES.python.keywords]),
    literals: new Set([...LANGUAGES.js.literals, ...LANGUAGES.python.literals]),
  };

  function languageFor(name) {
    const key = String(name || "").toLowerCase();
    return LANGUAGES[key] || LANGUAGES[ALIASES[key]] || GENERIC;
  }

  const NUMBER = /^(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[a-zA-Z]*/;
  const WORD = /^[A-Za-z_$][\w$]*/;

  function highlight(code, language) {
    const spec = languageFor(language);
    const fragment = document.createDocumentFragment();
    let plain = "";
    const flush = () => {
      if (plain) fragment.appendChild(document.createTextNode(plain));
      plain = "";
    };
    const token = (className, text) => {
      flush();
      fragment.appendChild(el("span", className, text));
    };
    let index = 0;
    outer: while (index < code.length) {
      const rest = code.slice(index, index + 8);
      for (const [open, close] of spec.block) {
        if (rest.startsWith(open)) {
          const end = code.indexOf(close, index + open.length);
          const stop = end === -1 ? code.length : end + close.length;
          token("tok-com", code.slice(index, stop));
          index = stop;
          continue outer;
        }
      }
      for (const marker of spec.line) {
        // "#" starts a comment only where a word does not go on (so "a#b" or "#!" in shell stay whole).
        if (rest.startsWith(marker) && !(marker === "#" && spec === GENERIC && /\w/.test(code[index - 1] || ""))) {
          const end = code.indexOf("\n", index);
          const stop = end === -1 ? code.length : end;
          token("tok-com", code.slice(index, stop));
          index = stop;
          continue outer;
        }
      }
      for (const quote of spec.strings) {
        if (rest.startsWith(quote)) {
          const multiline = quote.length === 3 || quote === "`";
          let cursor = index + quote.length;
          while (cursor < code.length) {
            if (code[cursor] === "\\") {
              cursor += 2;
              continue;
            }
            if (code.startsWith(quote, cursor)) {
              cursor += quote.length;
              break;
            }
            if (code[cursor] === "\n" && !multiline) break;
            cursor += 1;
          }
          token("tok-str", code.slice(index, Math.min(cursor, code.length)));
          index = Math.min(cursor, code.length);
          continue outer;
        }
      }
      const previous = code[index - 1] || "";
      if (!/[\w$]/.test(previous)) {
        const tail = code.slice(index, index + 200);
        let match = /\d|\.\d/.test(tail.slice(0, 2)) && NUMBER.exec(tail);
        if (match && /\d/.test(match[0])) {
          token("tok-num", match[0]);
          index += match[0].length;
          continue;
        }
        match = WORD.exec(tail);
        if (match) {
          const word = match[0];
          const key = spec.caseInsensitive ? word.toLowerCase() : word;
          if (spec.keywords.has(key)) token("tok-kw", word);
          else if (spec.literals.has(key)) token("tok-lit", word);
          else plain += word;
          index += word.length;
          continue;
        }
      }
      plain += code[index];
      index += 1;
    }
    flush();
    return fragment;
  }

  // --- Public ---------------------------------------------------------------------------------------------------------
  function render(text, options) {
    const fragment = document.createDocumentFragment();
    const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    renderBlocks(lines, fragment, options || {});
    return fragment;
  }

  window.LLMSiteMarkdown = { render, highlight, safeUrl };
})();
