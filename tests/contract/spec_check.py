#!/usr/bin/python3
"""Static checks of docs/openapi.yaml beyond the OpenAPI meta-schema (which
deploy/test runs first, with @seriousme/openapi-schema-validator):

- the YAML has no duplicated key (one swallowed a route once);
- every schema is a valid JSON Schema 2020-12 schema (the meta-schema of
  OpenAPI 3.1 does not look inside schemas);
- every example validates against its schema;
- every {param} of a path is declared as a path parameter, and no other;
- operationIds are unique;
- the operations are exactly the rows of the route table in master/api.c,
  and exactly the routes of the table in docs/api.md;
- each operation's query parameters are exactly the ones its route takes in
  master/api.c (the api_param tables the server checks every request
  against), with the same kind of value, enum, range and length, and the
  routes table of docs/api.md names exactly those;
- GET /v1/events' type takes exactly the event types master/*.c emits
  (and families of them, "guest.*").

Usage: spec_check.py [docs/openapi.yaml [master/api.c [docs/api.md]]];
exits 1 on any finding, printing each.
"""

import os
import re
import sys

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_lib  # noqa: E402

# What a schema that is broken (but passed its meta-schema) raises in use.
UNUSABLE = (jsonschema.RefResolutionError, jsonschema.exceptions.UnknownType)

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def api_md_routes(path):
    """{(METHOD, template): {query parameter names}} of the rows of the
    routes table of docs/api.md:
    "| `POST /v1/guests/{name}/stop[?wait=stopped&timeout=S]` | ..." (a
    route on two rows, with and without parameters, has the union)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `(GET|PUT|POST|PATCH|DELETE) (/[^`\[?]*)([^`]*)`", line)
            if m:
                names = set(re.findall(r"[?&]([a-z_]+)=", m.group(3)))
                out.setdefault((m.group(1), m.group(2)), set()).update(names)
    return out


NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# A TERM value (API_P_TERM: msg_term_is_valid, proto/msg.h).
TERM_PATTERN = "^[A-Za-z0-9._+-]{1,63}$"


def param_problems(spec, where, table, declared):
    """How the query parameters the spec declares for one operation differ
    from the ones its route's table in master/api.c takes."""
    problems = []
    have = {p["name"]: p for p in declared}
    want = {p["name"]: p for p in table}
    for name in sorted(set(want) - set(have)):
        problems.append("%s: master/api.c takes query parameter %s, the spec does not declare it"
                        % (where, name))
    for name in sorted(set(have) - set(want)):
        problems.append("%s: the spec declares query parameter %s, master/api.c does not take it"
                        % (where, name))
    for name in sorted(set(have) & set(want)):
        t, p = want[name], have[name]
        s = spec.deref(p.get("schema", {}))
        values = (t["values"] or "").split("|")
        if t["kind"] == "INT":
            got = (s.get("type"), s.get("minimum"), s.get("maximum"))
            exp = ("integer", t["min"], t["max"])
        elif t["kind"] == "NAME":
            got = (s.get("type"), s.get("pattern"))
            exp = ("string", NAME_PATTERN)
        elif t["kind"] == "TERM":
            got = (s.get("type"), s.get("pattern"))
            exp = ("string", TERM_PATTERN)
        elif t["kind"] == "UUID":
            got = (s.get("type"), s.get("format"))
            exp = ("string", "uuid")
        elif t["kind"] == "ENUM" and values == ["true", "false"] and s.get("type") == "boolean":
            got = exp = None
        elif t["kind"] == "ENUM":
            got = (s.get("type"), sorted(str(v) for v in s.get("enum", [])))
            exp = ("string", sorted(values))
        elif t["kind"] == "LIST":
            items = spec.deref(s.get("items", {}))
            got = (s.get("type"), sorted(items.get("enum", [])), s.get("minItems"),
                   s.get("maxItems"), p.get("style"), p.get("explode"))
            exp = ("array", sorted(values), 1, t["max"], "form", False)
        elif t["kind"] == "TEXT":
            got = (s.get("type"), s.get("minLength"), s.get("maxLength"))
            exp = ("string", 1, t["max"])
        else:
            got, exp = t["kind"], "a kind spec_check knows"
        if got != exp:
            problems.append("%s: query parameter %s is %s in the spec, master/api.c takes %s"
                            % (where, name, got, exp))
    return problems


def emitted_event_types(master_dir):
    """The event types master/*.c (tests aside) emit: the literal type of
    every events_emit and events_emit_project call."""
    out = set()
    for name in sorted(os.listdir(master_dir)):
        if not name.endswith(".c") or name.endswith("_test.c"):
            continue
        with open(os.path.join(master_dir, name), encoding="utf-8") as f:
            text = f.read()
        out.update(re.findall(r'\bevents_emit(?:_project)?\([^"]*"([a-z_]+(?:\.[a-z_]+)+)"', text))
    return out


def event_type_problems(tables, master_dir):
    """GET /v1/events' type takes every type the master emits, and no type
    it never emits (its families, "x.*", aside)."""
    t = next((p for p in tables.get(("GET", "/v1/events"), []) if p["name"] == "type"), None)
    if t is None:
        return ["GET /v1/events: master/api.c's table has no type parameter"]
    takes = {v for v in t["values"].split("|") if not v.endswith(".*")}
    emitted = emitted_event_types(master_dir)
    return ["event type %s is emitted by master/ but GET /v1/events?type= refuses it" % e
            for e in sorted(emitted - takes)] + [
        "GET /v1/events?type= takes %s, which master/ never emits" % e
        for e in sorted(takes - emitted)]


def check(spec_path, api_c, api_md):
    problems = []
    try:
        spec = openapi_lib.Spec(spec_path)
    except (openapi_lib.SpecError, Exception) as e:  # a parse error is the finding
        return ["%s: %s" % (spec_path, e)]

    meta = jsonschema.Draft202012Validator
    n_schemas = n_examples = 0
    for where, schema in spec.iter_schemas():
        n_schemas += 1
        try:
            meta.check_schema(schema)
        except jsonschema.SchemaError as e:
            problems.append("%s: not a JSON Schema 2020-12 schema: %s" % (where, e.message))
            continue
        try:
            # Every $ref in it resolves, to a schema that can be used.
            for probe in (None, 0, "", [], {}):
                spec.validator(schema).is_valid(probe)
            for i, ex in enumerate(schema.get("examples", []) if isinstance(schema, dict) else []):
                n_examples += 1
                for err in spec.errors(schema, ex):
                    problems.append("%s: examples[%d] does not validate: %s" % (where, i, err))
        except UNUSABLE as e:
            problems.append("%s: unusable: %s" % (where, str(e).splitlines()[0]))

    # Examples of request and response bodies.
    def body_examples(where, content):
        nonlocal n_examples
        for mt, body in (content or {}).items():
            if "example" in body and "schema" in body:
                n_examples += 1
                try:
                    for err in spec.errors(body["schema"], body["example"]):
                        problems.append("%s %s: example does not validate: %s" % (where, mt, err))
                except UNUSABLE as e:
                    problems.append("%s %s: unusable: %s" % (where, mt, str(e).splitlines()[0]))

    ids = {}
    for (m, tmpl), op in spec.ops.items():
        where = "%s %s" % (m, tmpl)
        body_examples(where + " requestBody", spec.deref(op.get("requestBody", {})).get("content"))
        for status, r in op.get("responses", {}).items():
            body_examples("%s %s" % (where, status), spec.deref(r).get("content"))
        oid = op.get("operationId")
        if not oid:
            problems.append("%s: no operationId" % where)
        elif oid in ids:
            problems.append("%s: operationId %s also names %s" % (where, oid, ids[oid]))
        else:
            ids[oid] = where
        declared = {
            spec.deref(p)["name"] for p in op["parameters"] if spec.deref(p).get("in") == "path"
        }
        used = set(re.findall(r"\{([^}]+)\}", tmpl))
        if declared != used:
            problems.append(
                "%s: path parameters declared %s, in the path %s"
                % (where, sorted(declared), sorted(used))
            )
        if not any(s.startswith("2") or s == "101" for s in op.get("responses", {})):
            problems.append("%s: no success response" % where)

    try:
        tables = openapi_lib.param_tables(api_c)
    except openapi_lib.SpecError as e:
        return ["%s" % e]
    problems += event_type_problems(tables, os.path.dirname(os.path.abspath(api_c)))
    n_params = 0
    for (m, tmpl), op in sorted(spec.ops.items()):
        if (m, tmpl) not in tables:
            continue  # not a route: said below
        declared = [spec.deref(p) for p in op["parameters"] if spec.deref(p).get("in") == "query"]
        n_params += len(declared)
        problems += param_problems(spec, "%s %s" % (m, tmpl), tables[(m, tmpl)], declared)

    routes = openapi_lib.route_table(api_c)
    documented = set(spec.ops)
    for m, p in sorted(routes - documented):
        problems.append("route %s %s of master/api.c is not in %s" % (m, p, spec_path))
    for m, p in sorted(documented - routes):
        problems.append("operation %s %s is not a route of master/api.c" % (m, p))
    md_params = api_md_routes(api_md)
    md = set(md_params)
    for (m, p), names in sorted(md_params.items()):
        takes = {t["name"] for t in tables.get((m, p), [])}
        if (m, p) in tables and names != takes:
            problems.append("%s lists %s %s with query parameters %s, master/api.c takes %s"
                            % (api_md, m, p, sorted(names), sorted(takes)))
    for m, p in sorted(documented - md):
        problems.append("operation %s %s is not in the routes table of %s" % (m, p, api_md))
    for m, p in sorted(md - documented):
        problems.append("%s lists %s %s, which is no operation" % (api_md, m, p))

    if not problems:
        print(
            "spec_check: %s: %d operations = the %d routes of master/api.c = the routes of %s; "
            "%d query parameters = master/api.c's; %d schemas valid, %d examples valid"
            % (spec_path, len(spec.ops), len(routes), os.path.basename(api_md), n_params, n_schemas,
               n_examples)
        )
    return problems


def main(argv):
    spec_path = argv[1] if len(argv) > 1 else os.path.join(TOP, "docs", "openapi.yaml")
    api_c = argv[2] if len(argv) > 2 else os.path.join(TOP, "master", "api.c")
    api_md = argv[3] if len(argv) > 3 else os.path.join(TOP, "docs", "api.md")
    problems = check(spec_path, api_c, api_md)
    for p in problems:
        print("spec_check: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
