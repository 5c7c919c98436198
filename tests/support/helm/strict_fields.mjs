// Unknown-field check for Kubernetes objects. The kubernetes-models validators check types,
// enums and required fields but accept any extra key, which is exactly what a mis-indented Helm
// template produces. This module reads the TypeScript declarations (.d.ts) that ship with
// kubernetes-models and @kubernetes-models/* — the API types generated from the Kubernetes and
// CRD OpenAPI schemas — and reports every key of an object that its type does not declare.
import fs from "node:fs";
import path from "node:path";

// ---- a small parser for the type expressions used in those declarations ----------------------

function tokenize(src) {
  const tokens = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_$][A-Za-z0-9_$]*)|(\d+)|(.))/gy;
  let m;
  while ((m = re.exec(src)) !== null) {
    if (m[0].trim() === "") break;
    if (m[1] !== undefined) tokens.push({ t: "str", v: JSON.parse(m[1]) });
    else if (m[2] !== undefined) tokens.push({ t: "id", v: m[2] });
    else if (m[3] !== undefined) tokens.push({ t: "num", v: m[3] });
    else tokens.push({ t: "p", v: m[4] });
  }
  return tokens;
}

class TypeParser {
  constructor(src) { this.toks = tokenize(src); this.i = 0; }
  peek(v) { const t = this.toks[this.i]; return t && (v === undefined || t.v === v) ? t : null; }
  next() { return this.toks[this.i++]; }
  expect(v) {
    const t = this.next();
    if (!t || t.v !== v) throw new Error(`expected '${v}', got '${t ? t.v : "end"}'`);
    return t;
  }
  type() {
    const alts = [this.primary()];
    while (this.peek("|")) { this.next(); alts.push(this.primary()); }
    return alts.length === 1 ? alts[0] : { kind: "union", alts };
  }
  primary() {
    const t = this.next();
    if (!t) throw new Error("unexpected end of type");
    if (t.t === "str" || t.t === "num") return { kind: "lit" };
    if (t.v === "{") return this.objectBody();
    if (t.v === "(") { const inner = this.type(); this.expect(")"); return this.arraySuffix(inner); }
    if (t.t !== "id") throw new Error(`unexpected '${t.v}' in type`);
    let result;
    if (t.v === "Array" && this.peek("<")) {
      this.next(); const item = this.type(); this.expect(">");
      result = { kind: "array", item };
    } else if (["string", "number", "boolean", "any", "unknown", "object", "null", "undefined", "true", "false"].includes(t.v)) {
      result = { kind: "prim" };
    } else if (this.peek("<")) {  // another generic: treat as opaque
      this.next(); this.type(); while (this.peek(",")) { this.next(); this.type(); } this.expect(">");
      result = { kind: "prim" };
    } else if (this.peek("[")) {  // indexed access such as IPod["kind"]
      this.next(); this.next(); this.expect("]");
      result = { kind: "prim" };
    } else {
      result = { kind: "ref", name: t.v };
    }
    return this.arraySuffix(result);
  }
  arraySuffix(type) {
    while (this.peek("[") && this.toks[this.i + 1] && this.toks[this.i + 1].v === "]") {
      this.i += 2; type = { kind: "array", item: type };
    }
    return type;
  }
  // After '{': either an index signature ({ [key: string]: T }) or members ("a"?: T; ...).
  objectBody() {
    const members = new Map();
    let index = null;
    while (!this.peek("}")) {
      if (this.peek("[")) {
        this.next(); this.next(); this.expect(":"); this.next(); this.expect("]"); this.expect(":");
        index = this.type();
      } else {
        const name = this.next();
        if (!name || (name.t !== "str" && name.t !== "id")) throw new Error("expected a member name");
        if (this.peek("?")) this.next();
        this.expect(":");
        members.set(name.v, this.type());
      }
      if (this.peek(";") || this.peek(",")) this.next();
    }
    this.expect("}");
    if (index && members.size === 0) return { kind: "map", item: index };
    return { kind: "object", members, index };
  }
}

function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

// Finds the balanced {...} body that starts at src[open] === '{'.
function balancedBody(src, open) {
  let depth = 0;
  for (let k = open; k < src.length; k++) {
    if (src[k] === "{") depth++;
    else if (src[k] === "}" && --depth === 0) return src.slice(open, k + 1);
  }
  throw new Error("unbalanced braces");
}

// ---- declaration files: interfaces, aliases, imports --------------------------------------------

export class TypeIndex {
  constructor(nodeModules) { this.nodeModules = nodeModules; this.files = new Map(); }

  file(filePath) {
    let f = this.files.get(filePath);
    if (f) return f;
    const src = stripComments(fs.readFileSync(filePath, "utf8"));
    f = { path: filePath, imports: new Map(), interfaces: new Map(), aliases: new Map(), exportsAs: new Map() };
    for (const m of src.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
      for (const part of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
        const [orig, local] = part.split(/\s+as\s+/).map((s) => s.trim());
        f.imports.set(local || orig, { name: orig, from: m[2] });
      }
    }
    for (const m of src.matchAll(/export\s+type\s*\{([^}]*)\}/g)) {
      for (const part of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
        const [orig, exported] = part.split(/\s+as\s+/).map((s) => s.trim());
        f.exportsAs.set(exported || orig, orig);
      }
    }
    for (const m of src.matchAll(/export\s+interface\s+([A-Za-z0-9_$]+)(?:\s+extends\s+[^{]+)?\s*\{/g)) {
      const open = m.index + m[0].length - 1;
      f.interfaces.set(m[1], { body: balancedBody(src, open), parsed: null });
    }
    for (const m of src.matchAll(/export\s+type\s+([A-Za-z0-9_$]+)\s*=\s*([^;]+);/g)) {
      f.aliases.set(m[1], { text: m[2], parsed: null });
    }
    this.files.set(filePath, f);
    return f;
  }

  resolveModule(spec, fromFile) {
    let base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(this.nodeModules, spec);
    base = base.replace(/\.js$/, "");
    for (const candidate of [base + ".d.ts", path.join(base, "index.d.ts")]) {
      if (fs.existsSync(candidate)) return candidate;
    }
    return null;
  }

  // The type a name stands for inside a file, or null when it cannot be found (treated as opaque).
  lookup(name, filePath, depth = 0) {
    if (depth > 8) return null;
    const f = this.file(filePath);
    const local = f.exportsAs.get(name) || name;
    const iface = f.interfaces.get(local);
    if (iface) {
      if (!iface.parsed) iface.parsed = { type: new TypeParser(iface.body.slice(1)).objectBody(), file: filePath };
      return iface.parsed;
    }
    const alias = f.aliases.get(local);
    if (alias) {
      if (!alias.parsed) alias.parsed = { type: new TypeParser(alias.text).type(), file: filePath };
      return alias.parsed;
    }
    const imp = f.imports.get(name);
    if (imp) {
      const target = this.resolveModule(imp.from, filePath);
      return target ? this.lookup(imp.name, target, depth + 1) : null;
    }
    return null;
  }
}

// ---- the check -------------------------------------------------------------------------------------

function isPlainObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

// Appends "unknown field" messages for `value` checked against `type` (declared in `file`).
export function checkFields(index, value, type, file, where, errors) {
  if (!type || value === null || value === undefined) return;
  switch (type.kind) {
    case "ref": {
      const found = index.lookup(type.name, file);
      if (found) checkFields(index, value, found.type, found.file, where, errors);
      return;
    }
    case "array":
      if (Array.isArray(value)) value.forEach((v, k) => checkFields(index, v, type.item, file, `${where}[${k}]`, errors));
      return;
    case "map":
      if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) checkFields(index, v, type.item, file, `${where}.${k}`, errors);
      return;
    case "object":
      if (!isPlainObject(value)) return;
      for (const [k, v] of Object.entries(value)) {
        if (type.members.has(k)) checkFields(index, v, type.members.get(k), file, `${where}.${k}`, errors);
        else if (type.index) checkFields(index, v, type.index, file, `${where}.${k}`, errors);
        else errors.push(`${where}.${k}: unknown field`);
      }
      return;
    case "union": {
      // Objects are checked against the first object-like alternative, if any.
      if (!isPlainObject(value)) return;
      const alt = type.alts.find((a) => a.kind === "object" || a.kind === "map" || a.kind === "ref");
      if (alt) checkFields(index, value, alt, file, where, errors);
      return;
    }
    default:
      return;
  }
}

// Checks `value` against the interface `iface` exported by the declaration file of `moduleSpec`
// (for example "kubernetes-models/apps/v1/Deployment" and "IDeployment").
export function checkAgainst(index, moduleSpec, iface, value, where) {
  const file = index.resolveModule(moduleSpec, path.join(index.nodeModules, "x"));
  if (!file) throw new Error(`no type declarations for ${moduleSpec}`);
  const found = index.lookup(iface, file);
  if (!found) throw new Error(`no interface ${iface} in ${file}`);
  const errors = [];
  checkFields(index, value, found.type, found.file, where, errors);
  return errors;
}
