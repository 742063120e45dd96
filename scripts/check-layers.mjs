#!/usr/bin/env node
// Fails when src/ has an import cycle: between its top-level folders (src/<folder>/..., each src/*.ts
// file its own node) or between the files of one folder. Every kind of reference counts, type-only
// ones too, because a cycle of types still ties the folders together: `import`, `import type`,
// `export ... from`, `import x = require()`, `import()` and `import('...').T` in types.
// Usage: node scripts/check-layers.mjs [srcDir]   (exit 0: no cycle, 1: cycles listed on stderr)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = resolve(process.argv[2] ?? join(root, 'src'));
const compilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
};
// Elementary cycles of a component are listed up to this many; the component itself is always listed.
const MAX_CYCLES_SHOWN = 40;

/** Every .ts file under dir (declarations excluded), as absolute paths. */
function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

/** The module specifiers a file references, with the line of each. */
function references(file) {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = [];
  const add = (literal) => {
    if (!literal || !ts.isStringLiteralLike(literal)) return;
    const line = source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1;
    found.push({ specifier: literal.text, line });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The src/ file a specifier names, or undefined for packages and files outside src/. */
function resolveInSrc(specifier, fromFile) {
  const { resolvedModule } = ts.resolveModuleName(specifier, fromFile, compilerOptions, ts.sys);
  const target = resolvedModule?.resolvedFileName;
  if (!target || resolvedModule.isExternalLibraryImport) return undefined;
  const rel = relative(srcDir, resolve(target));
  return rel.startsWith('..') ? undefined : resolve(target);
}

const label = (file) => relative(srcDir, file).split(sep).join('/');
/** The folder node of a file (by its label): its top-level folder, or the file itself at the top. */
const folderOf = (name) => {
  const parts = name.split('/');
  return parts.length === 1 ? parts[0] : `${parts[0]}/`;
};

/** Tarjan's strongly connected components with more than one node (or a self-loop). */
function components(graph) {
  let index = 0;
  const stack = [];
  const meta = new Map();
  const out = [];
  const strong = (v) => {
    meta.set(v, { index, low: index, onStack: true });
    index++;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!meta.has(w)) {
        strong(w);
        meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).low);
      } else if (meta.get(w).onStack) meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).index);
    }
    if (meta.get(v).low !== meta.get(v).index) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      meta.get(w).onStack = false;
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.has(v)) out.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!meta.has(v)) strong(v);
  return out;
}

/** Elementary cycles inside one component (each once, starting at its smallest node), capped. */
function cyclesIn(component, graph, max) {
  const members = new Set(component);
  const cycles = [];
  for (const start of component) {
    const path = [start];
    const onPath = new Set(path);
    const walk = (v) => {
      for (const w of [...(graph.get(v) ?? [])].sort()) {
        if (cycles.length >= max) return;
        if (!members.has(w) || w < start) continue;
        if (w === start) cycles.push([...path, start]);
        else if (!onPath.has(w)) {
          path.push(w);
          onPath.add(w);
          walk(w);
          onPath.delete(w);
          path.pop();
        }
      }
    };
    walk(start);
  }
  return cycles;
}

const files = sourceFiles(srcDir);
const fileGraph = new Map(files.map((f) => [label(f), new Set()]));
const folderGraph = new Map();
/** "a -> b" (folder edge) -> the file-level references that make it. */
const evidence = new Map();
for (const file of files) {
  const from = label(file);
  folderGraph.set(folderOf(from), folderGraph.get(folderOf(from)) ?? new Set());
  for (const { specifier, line } of references(file)) {
    const target = resolveInSrc(specifier, file);
    if (!target) continue;
    const to = label(target);
    fileGraph.get(from)?.add(to);
    const [a, b] = [folderOf(from), folderOf(to)];
    if (a === b) continue;
    folderGraph.get(a).add(b);
    const key = `${a} -> ${b}`;
    evidence.set(key, [...(evidence.get(key) ?? []), `${from}:${line} -> ${to}`]);
  }
}

const problems = [];
for (const component of components(folderGraph)) {
  const lines = [`folder cycle: {${component.join(', ')}}`];
  for (const cycle of cyclesIn(component, folderGraph, MAX_CYCLES_SHOWN))
    lines.push(`  ${cycle.join(' -> ')}`);
  for (const a of component) {
    for (const b of [...folderGraph.get(a)].sort()) {
      if (!component.includes(b)) continue;
      lines.push(`  ${a} -> ${b}:`);
      for (const ref of evidence.get(`${a} -> ${b}`)) lines.push(`    ${ref}`);
    }
  }
  problems.push(lines.join('\n'));
}

// Inside one folder: only the edges between files of that same folder node.
const sameFolder = new Map(
  [...fileGraph].map(([f, targets]) => [f, new Set([...targets].filter((t) => folderOf(t) === folderOf(f)))]),
);
for (const component of components(sameFolder)) {
  const lines = [`file cycle in ${folderOf(component[0])}: {${component.join(', ')}}`];
  for (const cycle of cyclesIn(component, sameFolder, MAX_CYCLES_SHOWN))
    lines.push(`  ${cycle.join(' -> ')}`);
  problems.push(lines.join('\n'));
}

if (problems.length > 0) {
  console.error(`check-layers: ${problems.length} import cycle(s) in ${relative(root, srcDir) || '.'}/\n`);
  console.error(problems.join('\n\n'));
  process.exit(1);
}
console.log(`check-layers: no import cycle among ${files.length} files in ${folderGraph.size} folder nodes`);
