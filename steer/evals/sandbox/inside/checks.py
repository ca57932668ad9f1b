"""The trusted checkers that the rewritten test module's comparisons and asserts call.

Runs inside the sandbox (see ``__init__``). The factories are called through ``_isolated`` (empty
globals, no builtins): every name they use is a closure variable taken from ``K`` before any
untrusted code runs, so patching builtins or ``operator`` cannot affect them.
"""


def _normalize_factory(K: dict):
    """norm(v) -> a fresh copy of v made only of exact builtin data, or raises TypeError.

    Instances of subclasses of builtin types (Counter, defaultdict, OrderedDict, namedtuple,
    IntEnum, str subclasses, ...) are read through the *builtin base type's* C methods, so any
    __eq__/__iter__/__hash__ override on the subclass is never called; anything else (a class
    with its own __eq__, a deque, a Fraction, ...) is rejected."""
    _type = K["type"]; _id = K["id"]; _mro = K["mro"]
    _TypeError = K["TypeError"]; _set = K["set"]; _frozenset = K["frozenset"]
    _list = K["list"]; _tuple = K["tuple"]; _dict = K["dict"]; _bytearray = K["bytearray"]
    _int = K["int"]; _float = K["float"]; _complex = K["complex"]; _str = K["str"]
    _bytes = K["bytes"]
    scalar = K["scalar_ids"]
    d_items = K["dict_items"]; l_iter = K["list_iter"]; t_iter = K["tuple_iter"]
    s_iter = K["set_iter"]; fs_iter = K["frozenset_iter"]
    to_int = K["int_int"]; to_float = K["float_float"]; to_complex = K["complex_complex"]
    to_str = K["str_str"]; to_bytes = K["bytes_bytes"]
    keys_t = K["keys_type"]; values_t = K["values_type"]; items_t = K["items_type"]
    tname = K["type_name"]

    def norm(v, active=None, depth=0):
        t = _type(v)
        if _id(t) in scalar:
            return v
        if depth > 500:
            raise _TypeError("structure nested too deeply")
        if active is None:
            active = _set()
        vid = _id(v)
        if vid in active:
            raise _TypeError("recursive structure")
        base = None
        if t is _list or t is _tuple or t is _dict or t is _set or t is _frozenset \
                or t is _bytearray or t is keys_t or t is values_t or t is items_t:
            base = t
        else:
            for b in _mro(t):
                if b is _dict or b is _list or b is _tuple or b is _set or b is _frozenset \
                        or b is _int or b is _float or b is _str or b is _bytes \
                        or b is _complex or b is _bytearray:
                    base = b
                    break
        if base is None:
            raise _TypeError("value of non-builtin type %s" % tname(t))
        if base is _int:
            return to_int(v)
        if base is _float:
            return to_float(v)
        if base is _str:
            return to_str(v)
        if base is _bytes:
            return to_bytes(v)
        if base is _complex:
            return to_complex(v)
        if base is _bytearray:
            return _bytearray(v)
        active.add(vid)
        try:
            d = depth + 1
            if base is _list:
                return [norm(x, active, d) for x in l_iter(v)]
            if base is _tuple:
                return _tuple([norm(x, active, d) for x in t_iter(v)])
            if base is _dict:
                return {norm(k, active, d): norm(x, active, d) for k, x in d_items(v)}
            if base is _set:
                return {norm(x, active, d) for x in s_iter(v)}
            if base is _frozenset:
                return _frozenset([norm(x, active, d) for x in fs_iter(v)])
            if base is keys_t or base is items_t:
                return {norm(x, active, d) for x in v}
            return [norm(x, active, d) for x in v]  # dict values view
        finally:
            active.discard(vid)
    return norm


def _checker_factory(K: dict) -> dict:
    """The functions the placeholders of ``rewrite.py`` stand for: cmp, assert_cmp, assert, not,
    truth. They compare only what ``norm`` made of the values, and record every failed assert
    with the guard (``steer.fail``) so that catching the AssertionError does not help."""
    _type = K["type"]; _len = K["len"]; _repr = K["repr"]; _bool = K["bool"]
    _audit = K["audit"]; _AssertionError = K["AssertionError"]; _Exception = K["Exception"]
    _TypeError = K["TypeError"]
    _ops = K["ops"]; _ident = K["ident_ops"]; _fname = K["filename"]; _range = K["range"]
    norm = K["norm"]

    def short(v):
        try:
            r = _repr(v)
        except _Exception:
            r = "<unrepresentable>"
        if _len(r) > 160:
            r = r[:157] + "..."
        return r

    def fail(msg):
        _audit("steer.fail", msg)
        raise _AssertionError(msg)

    def trusted(lineno, v, what):
        try:
            return norm(v)
        except _TypeError as e:
            fail("%s:%d: %s a %s; only builtin data is trusted (an __eq__/__bool__ override "
                 "cannot count)" % (_fname, lineno, what, e.args[0] if e.args else "bad value"))

    def compare(lineno, ops, operands):
        for i in _range(_len(ops)):
            op = ops[i]
            a = operands[i]
            b = operands[i + 1]
            if op not in _ident:
                a = trusted(lineno, a, "compared")
                b = trusted(lineno, b, "compared")
            if not _ops[op](a, b):
                return i, a, b
        return -1, None, None

    def cmp(lineno, ops, *operands):
        return compare(lineno, ops, operands)[0] < 0

    def assert_cmp(src, lineno, ops, *operands):
        i, a, b = compare(lineno, ops, operands)
        if i >= 0:
            fail("%s:%d: assert %s  (left: %s, right: %s)"
                 % (_fname, lineno, src, short(a), short(b)))

    def truthy(lineno, v):
        if _type(v) is _bool:
            return v
        return _bool(trusted(lineno, v, "took the truth value of"))

    def assert_(lineno, src, v):
        if not truthy(lineno, v):
            fail("%s:%d: assert %s" % (_fname, lineno, src))

    def not_(lineno, v):
        return not truthy(lineno, v)

    return {"cmp": cmp, "assert_cmp": assert_cmp, "assert": assert_, "not": not_,
            "truth": truthy}


def _ops_factory(contains):
    """``in`` / ``not in`` as functions (``operator`` has no reversed ``contains``)."""
    def op_in(a, b):
        return contains(b, a)

    def op_not_in(a, b):
        return not contains(b, a)
    return op_in, op_not_in

