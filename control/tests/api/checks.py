"""What the api test scripts share: assertions (each check prints what held, or raises) and a
few look-ups."""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def ok(r, what):
    """A reply whose retval is 0."""
    check(r.retval == 0, "%s (retval %d)" % (what, r.retval))
    return r


IF_LINK_UP = 2


def ip4(a):
    """An IPv4 address's 4 bytes (for ids)."""
    return bytes(int(x) for x in a.split("."))


def sw_of(vpp, name):
    return [i.sw_if_index for i in vpp.api.sw_interface_dump() if i.interface_name == name][0]


def link_up(vpp, sw):
    return any(i.flags & IF_LINK_UP for i in vpp.api.sw_interface_dump(sw_if_index=sw))
