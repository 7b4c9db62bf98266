// Approval form: each editable field rendered from its JSON Schema (text and number inputs with their bounds,
// selects for enums, rows to add, remove and reorder for lists), kept in sync with the field's JSON textarea —
// which is what the form posts, and what the "JSON" switch shows to power users. Errors show next to the input.
(function () {
  "use strict";
  const schemas = JSON.parse(document.getElementById("schemas").textContent);
  // the form's words, from the message catalog in the page's language
  const WORDS = {{ {
    "between": _("must be between {low} and {high}"), "at_least": _("must be at least {low}"),
    "at_most": _("must be at most {high}"), "number": _("enter a number"), "integer": _("enter a whole number"),
    "min_chars": _("at least {count} characters"), "max_chars": _("at most {count} characters"),
    "min_items": _("at least {count} items"), "max_items": _("at most {count} items"),
    "not_json": _("not valid JSON"), "bad_json": _("the JSON has a mistake; correct it in JSON first: {reason}"),
    "up": _("Up"), "down": _("Down"), "remove": _("Remove"), "add": _("Add a row"),
    "blocked": _("{count} places need correcting (marked in red)")} | tojson }};
  function say(key, values) {
    return WORDS[key].replace(/\{(\w+)\}/g, function (whole, name) { return String(values[name]); });
  }

  function kind(schema) {
    if (!schema || typeof schema !== "object") return "any";
    if (Array.isArray(schema.enum)) return "enum";
    if (Array.isArray(schema.anyOf)) {
      const real = schema.anyOf.filter(function (s) { return s.type !== "null"; });
      return real.length === 1 ? kind(real[0]) : "any";
    }
    return schema.type || "any";
  }
  function unwrap(schema) {
    if (schema && Array.isArray(schema.anyOf)) {
      const real = schema.anyOf.filter(function (s) { return s.type !== "null"; });
      if (real.length === 1) return real[0];
    }
    return schema || {};
  }
  function title(schema, key) {
    const own = schema && schema.title;
    return own && own !== key ? own : key;
  }
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function blank(schema) {
    const s = unwrap(schema);
    switch (kind(s)) {
      case "object": {
        const out = {};
        Object.keys(s.properties || {}).forEach(function (k) { out[k] = blank(s.properties[k]); });
        return out;
      }
      case "array": return [];
      case "integer": case "number": return s.minimum !== undefined ? s.minimum : 0;
      case "boolean": return false;
      case "enum": return s.enum[0];
      case "string": return "";
      default: return null;
    }
  }
  function bounds(s) {
    const lo = s.minimum, hi = s.maximum;
    if (lo !== undefined && hi !== undefined) return say("between", {low: lo, high: hi});
    if (lo !== undefined) return say("at_least", {low: lo});
    if (hi !== undefined) return say("at_most", {high: hi});
    return "";
  }
  // Check one scalar; returns the message to show, or "".
  function check(s, value, raw) {
    const k = kind(s);
    if ((k === "integer" || k === "number") && raw !== undefined) {
      if (raw.trim() === "") return say("number");
      if (!isFinite(Number(raw))) return say("number");
      if (k === "integer" && !Number.isInteger(Number(raw))) return say("integer");
      if ((s.minimum !== undefined && value < s.minimum) || (s.maximum !== undefined && value > s.maximum)) {
        return bounds(s);
      }
    }
    if (k === "string" && typeof value === "string") {
      if (s.minLength !== undefined && value.length < s.minLength) return say("min_chars", {count: s.minLength});
      if (s.maxLength !== undefined && value.length > s.maxLength) return say("max_chars", {count: s.maxLength});
    }
    return "";
  }

  // Build the editor for `value` under `schema`; `set` stores a new value; returns the node.
  function build(schema, value, set, path) {
    const s = unwrap(schema);
    const k = kind(s);
    if (k === "object" && s.properties) {
      const box = el("div", {"class": "obj"});
      const current = (value && typeof value === "object" && !Array.isArray(value)) ? value : blank(s);
      // the stored schema may have its keys sorted: the draft's own order, then `required`, comes first
      const order = [];
      Object.keys(current).concat(s.required || [], Object.keys(s.properties)).forEach(function (key) {
        if (s.properties[key] && order.indexOf(key) < 0) order.push(key);
      });
      order.forEach(function (key) {
        const sub = s.properties[key];
        const row = el("label", {"class": "prop"}, [el("span", {"class": "name", text: title(unwrap(sub), key)})]);
        row.appendChild(build(sub, current[key], function (v) { current[key] = v; set(current); }, path + "." + key));
        box.appendChild(row);
      });
      set(current);
      return box;
    }
    if (k === "array") return list(s, Array.isArray(value) ? value.slice() : [], set, path);
    if (k === "enum") {
      const select = el("select", {"data-path": path});
      s.enum.forEach(function (option, i) {
        const o = el("option", {value: String(i), text: String(option)});
        if (option === value) o.selected = true;
        select.appendChild(o);
      });
      select.addEventListener("change", function () { set(s.enum[Number(select.value)]); });
      return select;
    }
    if (k === "integer" || k === "number") {
      const attrs = {type: "number", "data-path": path, step: k === "integer" ? "1" : "any"};
      if (s.minimum !== undefined) attrs.min = String(s.minimum);
      if (s.maximum !== undefined) attrs.max = String(s.maximum);
      const input = el("input", attrs);
      input.value = value === null || value === undefined ? "" : String(value);
      const error = el("span", {"class": "error field-error", "data-for": path});
      input.addEventListener("input", function () {
        const number = Number(input.value);
        const message = check(s, number, input.value);
        error.textContent = message;
        input.setAttribute("aria-invalid", message ? "true" : "false");
        if (!message) set(number);
      });
      return el("span", {}, [input, error]);
    }
    if (k === "boolean") {
      const box = el("input", {type: "checkbox", "data-path": path});
      box.checked = !!value;
      box.addEventListener("change", function () { set(box.checked); });
      return box;
    }
    if (k === "string") {
      const text = value === null || value === undefined ? "" : String(value);
      const long = text.length > 40 || (s.maxLength || 0) > 200;
      const input = long ? el("textarea", {rows: "2", "data-path": path}) : el("input", {type: "text", "data-path": path});
      if (s.maxLength !== undefined) input.setAttribute("maxlength", String(s.maxLength));
      input.value = text;
      const error = el("span", {"class": "error field-error", "data-for": path});
      input.addEventListener("input", function () {
        const message = check(s, input.value);
        error.textContent = message;
        set(input.value);
      });
      return el("span", {"class": long ? "long" : ""}, [input, error]);
    }
    // anything else: its JSON, edited as text
    const raw = el("textarea", {rows: "3", "data-path": path});
    raw.value = JSON.stringify(value === undefined ? null : value, null, 2);
    const error = el("span", {"class": "error field-error", "data-for": path});
    raw.addEventListener("input", function () {
      try { set(JSON.parse(raw.value)); error.textContent = ""; } catch (e) { error.textContent = say("not_json"); }
    });
    return el("span", {}, [raw, error]);
  }

  function list(s, items, set, path) {
    const box = el("div", {"class": "list", "data-path": path});
    const note = el("span", {"class": "error field-error", "data-for": path});
    function redraw() {
      box.textContent = "";
      items.forEach(function (item, i) {
        const row = el("div", {"class": "row", "data-row": String(i)});
        row.appendChild(el("span", {"class": "row-no", text: String(i + 1) + "."}));
        row.appendChild(build(s.items, item, function (v) { items[i] = v; changed(); }, path + "." + i));
        const tools = el("span", {"class": "row-tools"});
        [[say("up"), -1], [say("down"), 1]].forEach(function (move) {
          const b = el("button", {type: "button", "class": "move", text: move[0]});
          b.disabled = (move[1] < 0 && i === 0) || (move[1] > 0 && i === items.length - 1);
          b.addEventListener("click", function () {
            const j = i + move[1];
            const held = items[i]; items[i] = items[j]; items[j] = held;
            changed(); redraw();
          });
          tools.appendChild(b);
        });
        const remove = el("button", {type: "button", "class": "remove", text: say("remove")});
        remove.addEventListener("click", function () { items.splice(i, 1); changed(); redraw(); });
        tools.appendChild(remove);
        row.appendChild(tools);
        box.appendChild(row);
      });
      const add = el("button", {type: "button", "class": "add", text: say("add")});
      add.addEventListener("click", function () { items.push(blank(s.items)); changed(); redraw(); });
      box.appendChild(add);
      box.appendChild(note);
    }
    function changed() {
      let message = "";
      if (s.minItems !== undefined && items.length < s.minItems) message = say("min_items", {count: s.minItems});
      if (s.maxItems !== undefined && items.length > s.maxItems) message = say("max_items", {count: s.maxItems});
      note.textContent = message;
      set(items);
    }
    redraw();
    set(items);
    return box;
  }

  document.querySelectorAll(".editor").forEach(function (editor) {
    const name = editor.getAttribute("data-name");
    const area = editor.querySelector("textarea.json");
    const host = editor.querySelector(".form");
    const toggle = editor.querySelector(".json-toggle");
    const problem = editor.querySelector(".json-error");
    // a text field (the draft holds a string there) is posted as the text itself, not as JSON: no JSON view
    const plain = editor.getAttribute("data-text") === "1";
    if (plain) toggle.closest("label").hidden = true;
    function render() {
      let value;
      if (plain) value = area.value;
      else try { value = JSON.parse(area.value); } catch (e) {
        problem.textContent = say("bad_json", {reason: e.message});
        return false;
      }
      problem.textContent = "";
      host.textContent = "";
      const schema = plain && kind(schemas[name]) !== "string" ? {type: "string"} : schemas[name];
      host.appendChild(build(schema, value, function (v) {
        area.value = plain ? String(v) : JSON.stringify(v, null, 2);
      }, name));
      return true;
    }
    toggle.addEventListener("change", function () {
      if (toggle.checked) { host.hidden = true; area.hidden = false; return; }
      if (render()) { host.hidden = false; area.hidden = true; } else { toggle.checked = true; }
    });
    if (render()) { area.hidden = true; } else { toggle.checked = true; host.hidden = true; }
  });

  // An input out of its bounds stops the form, with the reason already shown next to it.
  document.getElementById("decision").addEventListener("submit", function (event) {
    const action = event.submitter ? event.submitter.value : "approve";
    const shown = Array.prototype.filter.call(document.querySelectorAll(".field-error"),
      function (e) { return e.textContent && !e.closest("[hidden]"); });
    if (action === "approve" && shown.length) {
      event.preventDefault();
      shown[0].scrollIntoView({block: "center"});
      document.getElementById("form-blocked").textContent = say("blocked", {count: shown.length});
    }
  });
})();
