/*
 * list.h — the method registry: one line per moment method,
 * NM_METHOD(ENUM, definition), in the order of their indices (the first
 * three are NM_METHOD_PAPER, _EXACT and _DELTA of the public header).
 * Adding a method is its file under src/methods and one line here.
 */
NM_METHOD(PAPER, nm_method_paper)
NM_METHOD(EXACT, nm_method_exact)
NM_METHOD(DELTA, nm_method_delta)
NM_METHOD(PROPAGATE, nm_method_propagate)
