"""The OpenAPI document as the contract checks see it: loaded strictly (a
duplicated key is an error, not a silent overwrite), its operations, its
schemas as JSON Schema 2020-12 validators, and the master's route table read
from master/api.c so the two can be compared.

Debian's python3-yaml and python3-jsonschema only (deploy/install-deps);
run with /usr/bin/python3.
"""

import datetime
import re

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecError(Exception):
    """The document is not what the checks can use."""


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping."""


def _strict_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SpecError("line %d: key %r given twice" % (key_node.start_mark.line + 1, key))
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)
# YAML 1.1 reads an unquoted 2026-11-22 as a date; JSON has none, so keep text.
_StrictLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path):
    with open(path, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=_StrictLoader)
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3.1"):
        raise SpecError("%s: not an OpenAPI 3.1 document" % path)
    return spec


_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _is_date_time(value):
    if not isinstance(value, str):
        return True
    if not _TIME_RE.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def format_checker():
    """JSON Schema formats checked for real: the library's (uuid, ipv4,
    ipv6, ...) plus date-time, whose library checker needs a module Debian
    does not ship."""
    fc = jsonschema.FormatChecker()
    fc.checks("date-time")(_is_date_time)
    return fc


class Spec:
    """Operations and schema validators of one document."""

    def __init__(self, path):
        self.path = path
        self.doc = load(path)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.formats = format_checker()
        self.ops = {}  # (METHOD, path template) -> operation
        for tmpl, item in self.doc.get("paths", {}).items():
            for m in METHODS:
                if m in item:
                    op = dict(item[m])
                    op["parameters"] = list(item.get("parameters", [])) + list(
                        op.get("parameters", [])
                    )
                    self.ops[(m.upper(), tmpl)] = op
        self._paths = [(self._template_re(t), t) for t in self.doc.get("paths", {})]

    @staticmethod
    def _template_re(tmpl):
        out, pos = "", 0
        for m in re.finditer(r"\{([^}]+)\}", tmpl):
            out += re.escape(tmpl[pos : m.start()]) + "(?P<%s>[^/]+)" % m.group(1)
            pos = m.end()
        return re.compile("^" + out + re.escape(tmpl[pos:]) + "$")

    def match_path(self, path):
        """The template a concrete path matches (a literal segment beats a
        {param}, as /v1/guests:batch beats nothing and /v1/guests/{name}/ips
        beats nothing), or None."""
        hits = [t for rx, t in self._paths if rx.match(path)]
        if not hits:
            return None
        hits.sort(key=lambda t: t.count("{"))
        return hits[0]

    def methods_of(self, tmpl):
        return [m.upper() for m in METHODS if m in self.doc["paths"][tmpl]]

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def validator(self, schema):
        return jsonschema.Draft202012Validator(
            schema, resolver=self.resolver, format_checker=self.formats
        )

    def errors(self, schema, instance):
        """Validation errors of instance against schema, as sentences."""
        v = self.validator(schema)
        return [
            "%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
            for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
        ]

    def iter_schemas(self):
        """(where, schema) for every schema object the document holds at the
        places OpenAPI puts them: components, parameters, headers, bodies."""
        comps = self.doc.get("components", {})
        for name, s in comps.get("schemas", {}).items():
            yield "components/schemas/" + name, s
        for name, p in comps.get("parameters", {}).items():
            if "schema" in p:
                yield "components/parameters/" + name, p["schema"]
        for name, h in comps.get("headers", {}).items():
            if "schema" in h:
                yield "components/headers/" + name, h["schema"]

        def media(where, content):
            for mt, body in (content or {}).items():
                if "schema" in body:
                    yield "%s %s" % (where, mt), body["schema"]

        for name, r in comps.get("responses", {}).items():
            yield from media("components/responses/" + name, r.get("content"))
        for (m, tmpl), op in self.ops.items():
            where = "%s %s" % (m, tmpl)
            for p in op["parameters"]:
                p = self.deref(p)
                if "schema" in p:
                    yield "%s parameter %s" % (where, p["name"]), p["schema"]
            rb = self.deref(op.get("requestBody", {}))
            yield from media(where + " requestBody", rb.get("content"))
            for status, r in op.get("responses", {}).items():
                r = self.deref(r)
                yield from media("%s %s" % (where, status), r.get("content"))


# The route table: rows {API_X, "METHOD", "/pattern", "name", handler}.
_ROW_RE = re.compile(r'\{\s*API_\w+\s*,\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*"([^"]+)"', re.S)


def route_table(api_c):
    """(METHOD, template) of every row of the table in master/api.c, whose
    patterns are the OpenAPI path templates themselves."""
    with open(api_c, encoding="utf-8") as f:
        text = f.read()
    start = text.find("routes[] = {")
    end = text.find("};", start)
    if start < 0 or end < 0:
        raise SpecError("%s: no route table found" % api_c)
    rows = _ROW_RE.findall(text[start:end])
    if not rows:
        raise SpecError("%s: the route table has no rows" % api_c)
    return {(m, p) for m, p, _ in rows}


# The query parameter tables: static const struct api_param p_x[] = {...};
_PARAMS_RE = re.compile(r"static const struct api_param (\w+)\[\] = \{(.*?)\n\};", re.S)
_PARAM_RE = re.compile(r'\{\s*\.name = "([^"]+)"(.*?)\}', re.S)
_FIELD_RE = re.compile(r'\.(\w+)\s*=\s*((?:"[^"]*"\s*)+|\w+)')
_ROW_PARAMS_RE = re.compile(
    r'\{\s*API_\w+\s*,\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*"[^"]+"\s*,\s*\w+\s*,\s*\w+\s*,\s*(\w+)\s*\}',
    re.S,
)


def param_tables(api_c):
    """{(METHOD, template): [{"name", "kind", "values", "min", "max"}]} of the
    route table of master/api.c: the query parameters each route takes (an
    empty list for a route that takes none)."""
    with open(api_c, encoding="utf-8") as f:
        text = f.read()
    arrays = {}
    for array, body in _PARAMS_RE.findall(text):
        rows = []
        for name, rest in _PARAM_RE.findall(body):
            row = {"name": name, "kind": None, "values": None, "min": 0, "max": 0}
            for key, val in _FIELD_RE.findall(rest):
                if val.startswith('"'):
                    row[key] = "".join(re.findall(r'"([^"]*)"', val))
                elif key == "kind":
                    row[key] = val.replace("API_P_", "")
                else:
                    row[key] = int(val)
            rows.append(row)
        arrays[array] = rows
    start = text.find("routes[] = {")
    end = text.find("};", start)
    out = {}
    for method, tmpl, params in _ROW_PARAMS_RE.findall(text[start:end]):
        if params != "NULL" and params not in arrays:
            raise SpecError("%s: route %s %s names %s, which is no parameter table"
                            % (api_c, method, tmpl, params))
        out[(method, tmpl)] = arrays.get(params, [])
    return out
