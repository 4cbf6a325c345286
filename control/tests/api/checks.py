"""Assertions the api test scripts share: each check prints what held, or raises."""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def ok(r, what):
    """A reply whose retval is 0."""
    check(r.retval == 0, "%s (retval %d)" % (what, r.retval))
    return r
