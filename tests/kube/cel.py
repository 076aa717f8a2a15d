# SPDX-License-Identifier: LGPL-2.1-or-later
"""
TEST FIXTURE ONLY -- part of the API-server double (apiserver.py).

x-kubernetes-validations as kube-apiserver v1.32 evaluates them, for a
small subset of CEL: self, field selection, has(), ! && || ?:, == != < <=
> >=, in, + on strings, ints and lists, string/int/bool/null literals,
list literals, size(), type() and the type names, startsWith(),
endsWith() and matches(). Anything else raises Unsupported when the CRD is
registered, so that no rule is ever silently left unevaluated.

The behaviour follows apiextensions-apiserver: pkg/apiserver/schema/cel/
validation.go (the walk, the field errors, fieldPath, messageExpression,
ratcheting), values.go (how JSON becomes CEL values: null means absent in
an object with properties, int-or-string is an int or a string),
model.WithTypeAndObjectMeta (at the root only metadata.name and
metadata.generateName are visible), and k8s.io/apiserver/pkg/cel/common/
equality.go (which old value a node is compared with). docs/KUBE-DOUBLE.md
says what is not mirrored.
"""

import json
import re

INT64 = (-(1 << 63), (1 << 63) - 1)
# 5 KiB: celconfig.MaxEvaluatedMessageExpressionSizeBytes
MESSAGE_EXPRESSION_MAX = 5 * 1024
TYPE_NAMES = ("bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type")
# strings in these formats are timestamps, durations or bytes in CEL
CONVERTED_FORMATS = ("date", "date-time", "duration", "byte")


class Unsupported(ValueError):
    """A rule outside the subset (or one a real server would not compile)."""


class Err:
    """A CEL error value: it travels through the evaluation like a value, so
    that && and || can absorb it as CEL does."""
    def __init__(self, msg):
        self.msg = msg

    def __repr__(self):
        return "Err(%r)" % self.msg


class Type:
    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, Type) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return self.name


NO_OVERLOAD = "no such overload"


# --------------------------------------------------------------------------
# parsing

_TOKEN = re.compile(r"""\s+|(?P<num>\d+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)
                        |(?P<str>'(?:[^'\\\r\n]|\\.)*'|"(?:[^"\\\r\n]|\\.)*")
                        |(?P<op>&&|\|\||==|!=|<=|>=|[<>!?:()\[\],.+\-*/%{}])""", re.VERBOSE)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "?": "?", "`": "`"}


def _unescape(m):
    if m.group(1) not in _ESCAPES:
        raise Unsupported("string escape \\%s is not supported" % m.group(1))
    return _ESCAPES[m.group(1)]


def _tokens(src):
    out, i = [], 0
    while i < len(src):
        m = _TOKEN.match(src, i)
        if not m or src.startswith(("'" * 3, '"' * 3), i):
            raise Unsupported("unexpected %r at offset %d (triple-quoted or unterminated strings are not supported)"
                              % (src[i:i + 3], i))
        kind = m.lastgroup
        v = m.group(kind) if kind else None
        if kind == "num":
            if src[m.end():m.end() + 1] in (".", "e", "E", "u", "U", "x", "X"):
                raise Unsupported("only decimal int literals are supported (offset %d)" % i)
            v = int(v)
        elif kind == "id" and v in ("r", "R", "b", "B") and src[m.end():m.end() + 1] in ("'", '"'):
            raise Unsupported("raw and bytes literals are not supported (offset %d)" % i)
        elif kind == "str":
            v = re.sub(r"\\(.)", _unescape, v[1:-1])
        if kind:
            out.append((kind, v, i))
        i = m.end()
    out.append(("end", None, len(src)))
    return out


class _Parser:
    """Recursive descent over CEL's grammar, keeping only the subset."""
    RELOPS = ("==", "!=", "<", "<=", ">", ">=", "in")

    def __init__(self, src):
        self.t, self.i = _tokens(src), 0

    def peek(self, kind, value=None):
        k, v, _ = self.t[self.i]
        return k == kind and (value is None or v == value)

    def take(self, kind, value=None):
        if not self.peek(kind, value):
            k, v, pos = self.t[self.i]
            raise Unsupported("expected %s at offset %d, got %s" % (value or kind, pos, v if v is not None else k))
        self.i += 1
        return self.t[self.i - 1][1]

    def parse(self):
        e = self.expr()
        if not self.peek("end"):
            k, v, pos = self.t[self.i]
            raise Unsupported("%r is not supported (offset %d)" % (v, pos))
        return e

    def expr(self):
        c = self.binary(0)
        if self.peek("op", "?"):
            self.i += 1
            a = self.binary(0)
            self.take("op", ":")
            return ("cond", c, a, self.expr())
        return c

    LEVELS = (("||",), ("&&",), RELOPS, ("+",))

    def binary(self, level):
        if level == len(self.LEVELS):
            return self.unary()
        e = self.binary(level + 1)
        while True:
            k, v, pos = self.t[self.i]
            # "in" is an identifier token, the other operators are not
            if v in self.LEVELS[level] and (k == "op") == (v != "in") and k in ("op", "id"):
                self.i += 1
                e = ("op", v, e, self.binary(level + 1))
            elif k == "op" and v in ("-", "*", "/", "%") and level == len(self.LEVELS) - 1:
                raise Unsupported("arithmetic %r is not supported (offset %d)" % (v, pos))
            else:
                return e

    def unary(self):
        if self.peek("op", "!"):
            self.i += 1
            return ("not", self.unary())
        if self.peek("op", "-") and self.t[self.i + 1][0] == "num":
            self.i += 1
            v = -self.take("num")
            return ("lit", v)
        return self.member()

    def member(self):
        e = self.primary()
        while True:
            if self.peek("op", "."):
                self.i += 1
                name = self.take("id")
                if self.peek("op", "("):
                    arity = {"startsWith": 1, "endsWith": 1, "matches": 1, "size": 0}.get(name)
                    if arity is None:
                        raise Unsupported("the method %s() is not supported" % name)
                    args = self.args("(", ")")
                    if len(args) != arity:
                        raise Unsupported("%s() takes %d argument(s)" % (name, arity))
                    e = ("call", name, [e] + args)
                else:
                    e = ("select", e, name)
            elif self.peek("op", "["):
                raise Unsupported("indexing with [] is not supported (offset %d)" % self.t[self.i][2])
            else:
                return e

    def args(self, open_, close):
        self.take("op", open_)
        out = []
        while not self.peek("op", close):
            out.append(self.expr())
            if not self.peek("op", ","):
                break
            self.i += 1
        self.take("op", close)
        return out

    def primary(self):
        k, v, pos = self.t[self.i]
        if k in ("num", "str"):
            if k == "num" and v > INT64[1]:
                raise Unsupported("int literal out of range (offset %d)" % pos)
            self.i += 1
            return ("lit", v)
        if k == "op" and v == "(":
            self.i += 1
            e = self.expr()
            self.take("op", ")")
            return e
        if k == "op" and v == "[":
            return ("list", self.args("[", "]"))
        if k != "id":
            raise Unsupported("%r is not supported (offset %d)" % (v, pos))
        self.i += 1
        if self.peek("op", "("):
            args = self.args("(", ")")
            if v == "has" and len(args) == 1 and args[0][0] == "select":
                return ("has", args[0])
            if v in ("size", "type") and len(args) == 1:
                return ("call", v, args)
            raise Unsupported("the function %s() with these arguments is not supported (offset %d)" % (v, pos))
        if v in ("true", "false"):
            return ("lit", v == "true")
        if v == "null":
            return ("lit", None)
        if v == "self":
            return ("self",)
        if v in TYPE_NAMES:
            return ("lit", Type(v))
        if v == "oldSelf":
            raise Unsupported("transition rules (oldSelf) are not supported")
        raise Unsupported("undeclared reference to %r (offset %d)" % (v, pos))


def _re_translate(pattern):
    """An RE2 pattern as Python re. RE2's '$' is the end of the text (no
    newline may follow), its '\\z' is Python's '\\Z'; constructs RE2 lacks,
    POSIX classes and multi-line mode are refused."""
    if re.search(r"\(\?(=|!|<=|<!|P=)|\\[1-9Z]|\(\?[a-zA-Z]*m|\[:", pattern):
        raise Unsupported("regular expression %r uses a construct the double does not translate from RE2" % pattern)
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append("\\Z" if pattern[i + 1:i + 2] == "z" else pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            # a ']' right after '[' or '[^' is a literal
            j = i + 1 + (pattern[i + 1:i + 2] == "^")
            j += pattern[j:j + 1] == "]"
            out.append(pattern[i:j])
            i, in_class = j, True
            continue
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as e:
        raise Unsupported("regular expression %r: %s" % (pattern, e))


class Program:
    """One compiled CEL expression."""
    def __init__(self, src):
        self.src = src
        self.ast = _Parser(src).parse()
        self.regexes = {}
        self._walk(self.ast)

    def _walk(self, n):
        if n[0] == "call" and n[1] == "matches" and n[2][1][0] == "lit" and isinstance(n[2][1][1], str):
            self.regexes[n[2][1][1]] = _re_translate(n[2][1][1])
        for x in n[1:]:
            if isinstance(x, tuple):
                self._walk(x)
            elif isinstance(x, list):
                for y in x:
                    self._walk(y)

    def eval(self, self_value):
        return _eval(self, self.ast, self_value)


def compile_rule(src):
    return Program(src)


# --------------------------------------------------------------------------
# evaluation

def type_name(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null_type"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    return "type"


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def equal(a, b):
    """CEL's heterogeneous equality: values of different types are not equal
    (numbers compare by value across int and double)."""
    if isinstance(a, Err):
        return a
    if isinstance(b, Err):
        return b
    if _num(a) and _num(b):
        return a == b
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            r = equal(x, y)
            if r is not True:
                return r
        return True
    if isinstance(a, dict):
        if set(a) != set(b):
            return False
        for k in a:
            r = equal(a[k], b[k])
            if r is not True:
                return r
        return True
    return a == b


def _int_result(v):
    return v if INT64[0] <= v <= INT64[1] else Err("integer overflow")


def _eval(p, n, s):
    op = n[0]
    if op == "lit":
        return n[1]
    if op == "self":
        return s
    if op == "list":
        return [_eval(p, x, s) for x in n[1]]
    if op == "select" or op == "has":
        sel = n[1] if op == "has" else n
        base = _eval(p, sel[1], s)
        if isinstance(base, Err):
            return base
        if not isinstance(base, dict):
            return Err(NO_OVERLOAD)
        if sel[2] not in base:
            return False if op == "has" else Err("no such key: %s" % sel[2])
        v = base[sel[2]]
        return v if op == "select" or isinstance(v, Err) else True
    if op == "not":
        v = _eval(p, n[1], s)
        return v if isinstance(v, Err) else (not v) if isinstance(v, bool) else Err(NO_OVERLOAD)
    if op == "cond":
        c = _eval(p, n[1], s)
        if isinstance(c, Err):
            return c
        if not isinstance(c, bool):
            return Err(NO_OVERLOAD)
        return _eval(p, n[2] if c else n[3], s)
    if op == "op" and n[1] in ("&&", "||"):
        # commutative: a deciding value on either side wins over an error
        # on the other; otherwise the left error is the result
        decide = n[1] == "||"
        a = _eval(p, n[2], s)
        if a is decide:
            return decide
        b = _eval(p, n[3], s)
        if b is decide:
            return decide
        for v in (a, b):
            if isinstance(v, Err):
                return v
            if not isinstance(v, bool):
                return Err(NO_OVERLOAD)
        return not decide
    if op == "op":
        a, b = _eval(p, n[2], s), _eval(p, n[3], s)
        for v in (a, b):
            if isinstance(v, Err):
                return v
        o = n[1]
        if o == "==":
            return equal(a, b)
        if o == "!=":
            r = equal(a, b)
            return r if isinstance(r, Err) else not r
        if o == "in":
            if isinstance(b, list):
                for x in b:
                    if equal(x, a) is True:
                        return True
                return False
            if isinstance(b, dict):
                return isinstance(a, str) and a in b
            return Err(NO_OVERLOAD)
        if o == "+":
            if _num(a) and _num(b) and type(a) is type(b):
                return _int_result(a + b) if isinstance(a, int) else a + b
            if type_name(a) == type_name(b) and isinstance(a, (str, list)):
                return a + b
            return Err(NO_OVERLOAD)
        # < <= > >=
        if not ((_num(a) and _num(b)) or (type_name(a) == type_name(b) and isinstance(a, (str, bool)))):
            return Err(NO_OVERLOAD)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[o]
    if op == "call":
        args = [_eval(p, x, s) for x in n[2]]
        for v in args:
            if isinstance(v, Err):
                return v
        f = n[1]
        if f == "size":
            return len(args[0]) if isinstance(args[0], (str, list, dict)) else Err(NO_OVERLOAD)
        if f == "type":
            return Type(type_name(args[0]))
        if not all(isinstance(v, str) for v in args):
            return Err(NO_OVERLOAD)
        if f == "startsWith":
            return args[0].startswith(args[1])
        if f == "endsWith":
            return args[0].endswith(args[1])
        rx = p.regexes.get(args[1])
        if rx is None:
            try:
                rx = _re_translate(args[1])
            except Unsupported as e:
                return Err(str(e))
        return rx.search(args[0]) is not None
    raise AssertionError(op)


# --------------------------------------------------------------------------
# JSON to CEL values (values.go UnstructuredToVal)

_STRING = {"type": "string"}
_META = {"type": "object", "properties": {"name": _STRING, "generateName": _STRING}}


def _go_type(v):
    return {bool: "bool", int: "int64", float: "float64", str: "string", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(v), "<nil>")


def with_type_and_object_meta(s):
    """The root (and an embedded resource) shows CEL kind, apiVersion and
    only metadata.name and metadata.generateName."""
    props = dict(s.get("properties") or {})
    props.update(kind=_STRING, apiVersion=_STRING, metadata=_META)
    return dict(s, properties=props)


def to_cel(v, s, root=False):
    if root or s.get("x-kubernetes-embedded-resource") is True:
        s = with_type_and_object_meta(s)
    if v is None:
        return None if s.get("nullable") else Err("invalid data, got null for schema with nullable=false")
    if s.get("x-kubernetes-int-or-string"):
        if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        return Err("invalid data, expected XIntOrString value to be either a string or integer")
    t = s.get("type")
    if t == "object":
        if not isinstance(v, dict):
            return Err("invalid data, expected a map for the provided schema with type=object")
        props, ap = s.get("properties"), s.get("additionalProperties")
        if props is not None:
            # null in an object with properties is an absent field
            return {k: to_cel(x, props[k]) for k, x in v.items() if k in props and x is not None}
        if isinstance(ap, dict):
            return {k: to_cel(x, ap) for k, x in v.items()}
        if s.get("x-kubernetes-preserve-unknown-fields"):
            return {}
        return Err("invalid object type, expected either Properties or AdditionalProperties with Allows=true "
                   "and non-empty Schema")
    if t == "array":
        if not isinstance(v, list):
            return Err("invalid data, expected an array for the provided schema with type=array")
        if not isinstance(s.get("items"), dict):
            return Err("invalid array type, expected Items with a non-empty Schema")
        return [to_cel(x, s["items"]) for x in v]
    if t == "string":
        return v if isinstance(v, str) else Err("invalid data, expected string, got %s" % _go_type(v))
    if t == "number":
        return float(v) if _num(v) else Err("invalid data, expected float, got %s" % _go_type(v))
    if t == "integer":
        ok = isinstance(v, int) and not isinstance(v, bool)
        return v if ok else Err("invalid data, expected int, got %s" % _go_type(v))
    if t == "boolean":
        return v if isinstance(v, bool) else Err("invalid data, expected bool, got %s" % _go_type(v))
    if s.get("x-kubernetes-preserve-unknown-fields"):
        return v
    return Err("invalid type, expected object, array, number, integer, boolean or string, or no type with "
               "x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields is true, got %s" % (t or ""))


def check_fields(prog, schema, root):
    """What the real compiler's type check would refuse and this subset can
    see: a selected field the schema does not declare, a selection on a
    value that is no object, a string format CEL converts, has() on what is
    no field."""
    def sch(n):
        if n[0] == "self":
            s = with_type_and_object_meta(schema) if root else schema
        elif n[0] == "select":
            base = sch(n[1])
            if base is None:
                return None
            if base.get("type") != "object":
                raise Unsupported("selecting %r on a value that is not an object" % n[2])
            props, ap = base.get("properties"), base.get("additionalProperties")
            if props is not None:
                if n[2] not in props:
                    raise Unsupported("undefined field %r" % n[2])
                s = props[n[2]]
            elif isinstance(ap, dict):
                s = ap
            else:
                raise Unsupported("selecting %r on an object without properties" % n[2])
        else:
            return None
        if s.get("format") in CONVERTED_FORMATS and s.get("type") == "string":
            raise Unsupported("format %s strings are %s values in CEL" % (s["format"], s["format"]))
        return s

    def walk(n):
        if n[0] in ("self", "select"):
            sch(n)
        for x in n[1:]:
            for y in (x if isinstance(x, list) else [x]):
                if isinstance(y, tuple):
                    walk(y)
    walk(prog.ast)


# --------------------------------------------------------------------------
# fieldPath (ValidFieldPath)

_UNQUOTE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "'": "'", "\\": "\\"}


def valid_field_path(fp, schema):
    """The normalized field.Path string of a rule's fieldPath ('.a.b',
    ".m['key']"), or ValueError."""
    toks, i = [], 0
    while i < len(fp):
        if fp[i] == "'":
            j = i + 1
            while j < len(fp) and not (fp[j] == "'" and fp[j - 1] != "\\"):
                j += 1
            toks.append(fp[i:j + 1])
            i = j + 1
        elif fp[i] in ".[]":
            toks.append(fp[i])
            i += 1
        else:
            j = i
            while j < len(fp) and fp[j] not in ".[]":
                j += 1
            toks.append(fp[i:j])
            i = j
    path, s, it = "", schema, iter(toks)

    def step(name):
        nonlocal path, s
        if not isinstance(s, dict):
            raise ValueError("does not refer to a valid field")
        props, ap = s.get("properties"), s.get("additionalProperties")
        if props is not None:
            if name not in props:
                raise ValueError("does not refer to a valid field")
            path, s = (path + "." + name if path else name), props[name]
        elif ap is not None:
            path, s = path + "[%s]" % name, ap if isinstance(ap, dict) else {}
        else:
            raise ValueError("does not refer to a valid field")
    for t in it:
        if t == ".":
            name = next(it, None)
            if name is None:
                raise ValueError("unexpected end of JSON path")
            step(name)
        elif t == "[":
            q = next(it, None)
            if q is None:
                raise ValueError("unexpected end of JSON path")
            if len(q) < 2 or q[0] != "'" or q[-1] != "'":
                raise ValueError("expected single quoted string but got %s" % q)
            try:
                name = re.sub(r"\\(.)", lambda m: _UNQUOTE[m.group(1)], q[1:-1])
            except KeyError as e:
                raise ValueError("invalid string literal: invalid escape char \\%s" % e.args[0])
            step(name)
            close = next(it, None)
            if close is None:
                raise ValueError("unexpected end of JSON path")
            if close != "]":
                raise ValueError("expected ] but got %s" % close)
        else:
            raise ValueError("expected [ or . but got: %s" % t)
    return path


# --------------------------------------------------------------------------
# the validator: the rules of a structural schema, evaluated over an object

REASONS = {"FieldValueForbidden": ("FieldValueForbidden", "Forbidden"),
           "FieldValueRequired": ("FieldValueRequired", "Required value"),
           "FieldValueDuplicate": ("FieldValueDuplicate", "Duplicate value"),
           "FieldValueInvalid": ("FieldValueInvalid", "Invalid value")}


def _path(p):
    # field.Path's String() of the nil root path
    return "<nil>" if p is None else p


def _child(p, name):
    return name if p is None else p + "." + name


def _go_q(s):
    return json.dumps(s, ensure_ascii=False)


class Rule:
    def __init__(self, entry, schema, root):
        self.rule = entry.get("rule") or ""
        self.message = entry.get("message") or ""
        self.reason = entry.get("reason")
        self.program = compile_rule(self.rule)
        check_fields(self.program, schema, root)
        me = (entry.get("messageExpression") or "").strip()
        self.message_expression = None
        if me:
            self.message_expression = compile_rule(me)
            check_fields(self.message_expression, schema, root)
        fp = entry.get("fieldPath") or ""
        self.field_path = valid_field_path(fp, schema) if fp else ""

    def error_string(self):
        # ruleErrorString
        return self.message.strip() or self.rule.strip()

    def detail(self, value):
        if self.message_expression is not None:
            m = self.message_expression.eval(value)
            # a failed, empty, too long or multi-line message falls back
            if isinstance(m, str) and m.strip() and len(m.strip().encode()) <= MESSAGE_EXPRESSION_MAX \
                    and "\n" not in m.strip():
                return m.strip()
        return self.message.strip() or "failed rule: %s" % self.rule.strip()


class Node:
    """The rules at one schema node and the nodes below that have rules."""
    def __init__(self, schema, root, where, unsupported):
        self.schema, self.root, self.rules = schema, root, []
        for i, entry in enumerate(schema.get("x-kubernetes-validations") or []):
            try:
                self.rules.append(Rule(entry, schema, root))
            except (Unsupported, ValueError) as e:
                unsupported.append("%s.x-kubernetes-validations[%d]: %s (rule %r)" % (where, i, e, entry.get("rule")))
        if schema.get("format") in CONVERTED_FORMATS and schema.get("type") == "string" and self.rules:
            unsupported.append("%s: rules on a format %s string" % (where, schema["format"]))
        props = schema.get("properties") or {}
        self.props = {k: Node.build(props[k], False, "%s.properties[%s]" % (where, k), unsupported)
                      for k in props if isinstance(props[k], dict)}
        self.props = {k: v for k, v in self.props.items() if v}
        ap, items = schema.get("additionalProperties"), schema.get("items")
        self.ap = Node.build(ap, False, where + ".additionalProperties", unsupported) if isinstance(ap, dict) else None
        self.items = Node.build(items, False, where + ".items", unsupported) if isinstance(items, dict) else None

    @staticmethod
    def build(schema, root, where, unsupported):
        n = Node(schema, root or schema.get("x-kubernetes-embedded-resource") is True, where, unsupported)
        return n if n.rules or n.props or n.ap or n.items else None


def compile_schema(schema, where):
    """The validator of a CRD version's openAPIV3Schema, or None when it has
    no rules. Raises Unsupported naming every rule outside the subset."""
    unsupported = []
    n = Node.build(schema, True, where, unsupported)
    if unsupported:
        raise Unsupported("; ".join(unsupported))
    return n


# ratcheting (CRDValidationRatcheting, beta and on since v1.30): on update,
# a rule's failure on a node whose value equals its correlated old value is
# only a warning

class Correlated:
    """common.CorrelatedObject: a new value, the old value it correlates
    with, and whether the two are equal (as the real server compares them:
    through the schema, so a key the schema does not know makes a map
    unequal -- which is why the root, whose metadata has no properties in
    the schema, never counts as unchanged)."""
    def __init__(self, new, old, schema):
        self.new, self.old, self.schema, self._eq = new, old, schema, None

    def key(self, k):
        if not (isinstance(self.new, dict) and isinstance(self.old, dict)) or k not in self.new or k not in self.old:
            return None
        props, ap = self.schema.get("properties") or {}, self.schema.get("additionalProperties")
        s = props.get(k) if k in props else ap if isinstance(ap, dict) else None
        return Correlated(self.new[k], self.old[k], s) if s is not None else None

    def index(self, i):
        if not (isinstance(self.new, list) and isinstance(self.old, list)) or i >= len(self.new):
            return None
        items, lt = self.schema.get("items"), self.schema.get("x-kubernetes-list-type")
        old = None
        if lt == "map":
            keys = self.schema.get("x-kubernetes-list-map-keys") or []
            cur = self.new[i] if isinstance(self.new[i], dict) else {}
            for o in self.old:
                if isinstance(o, dict) and all(strict_equal(o.get(k), cur.get(k)) for k in keys):
                    old = o
                    break
        elif lt not in ("set", "atomic") and i < len(self.old):
            old = self.old[i]
        return Correlated(self.new[i], old, items) if old is not None and isinstance(items, dict) else None

    def equal(self):
        if self._eq is None:
            self._eq = self._equal()
        return self._eq

    def _equal(self):
        n, o = self.new, self.old
        if n is None or o is None:
            return n is None and o is None
        if isinstance(n, list) and isinstance(o, list):
            if len(n) != len(o):
                return False
            for i in range(len(n)):
                c = self.index(i)
                if c is None:
                    return False if self.schema.get("x-kubernetes-list-type") == "map" else strict_equal(n, o)
                if not c.equal():
                    return False
            return True
        if isinstance(n, dict) and isinstance(o, dict):
            if len(n) != len(o):
                return False
            return all((c := self.key(k)) is not None and c.equal() for k in n)
        return strict_equal(n, o)


def strict_equal(a, b):
    """reflect.DeepEqual on decoded JSON: an int64 is never a float64."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return a == b


class _Ratchet:
    """ratchetingOptions: the correlated node, else the nearest correlated
    ancestor."""
    def __init__(self, cur=None, parent=None):
        self.cur, self.parent = cur, parent

    def key(self, k, at_root):
        if self.cur is None:
            return self
        if at_root and k in ("apiVersion", "kind"):
            return _Ratchet()
        return _Ratchet(self.cur.key(k), self.cur)

    def index(self, i):
        return self if self.cur is None else _Ratchet(self.cur.index(i), self.cur)

    def ratchets(self):
        node = self.cur if self.cur is not None else self.parent
        return node is not None and node.equal()


def _field_error(reason, path, sts_type, detail):
    r, words = REASONS.get(reason or "FieldValueInvalid", REASONS["FieldValueInvalid"])
    if r == "FieldValueInvalid":
        body = "%s: %s: %s" % (words, _go_q(sts_type), detail)
    elif r == "FieldValueDuplicate":
        body = "%s: %s" % (words, _go_q(sts_type))   # field.Duplicate drops the detail
    else:
        body = "%s: %s" % (words, detail)
    return (r, _path(path), body)


def validate(node, obj, old, schema):
    """Evaluate every rule over obj (old: the stored object on update, else
    None). Returns (errors as (reason, field, message), warnings)."""
    errs, warns = [], []
    corr = _Ratchet(Correlated(obj, old, schema)) if old is not None else _Ratchet()
    _walk(node, obj, None, corr, errs, warns, True)
    return errs, warns


def _walk(node, value, path, corr, errs, warns, at_root=False):
    if node is None or value is None:
        return
    if node.rules:
        sts_type = node.schema.get("type") or ""
        self_value = to_cel(value, node.schema, node.root)
        for r in node.rules:
            res = r.program.eval(self_value)
            if isinstance(res, Err):
                if res.msg.startswith(NO_OVERLOAD):
                    d = ("'%s': call arguments did not match a supported operator, function or macro signature "
                         "for rule: %s" % (res.msg, r.error_string()))
                else:
                    d = "%s evaluating rule: %s" % (res.msg, r.error_string())
                errs.append(_field_error(None, path, sts_type, d))
                continue
            if res is True:
                continue
            where = _child(path, r.field_path) if r.field_path else path
            e = _field_error(r.reason, where, sts_type, r.detail(self_value))
            if corr.ratchets():
                warns.append("%s: %s" % (e[1], e[2]))
            else:
                errs.append(e)
    if isinstance(value, list) and node.items:
        for i, x in enumerate(value):
            _walk(node.items, x, "%s[%d]" % (_path(path), i), corr.index(i), errs, warns)
    elif isinstance(value, dict):
        for k, x in value.items():
            sub = node.ap if node.ap else node.props.get(k)
            if sub:
                p = "%s[%s]" % (_path(path), k) if node.ap else _child(path, k)
                _walk(sub, x, p, corr.key(k, at_root), errs, warns)
