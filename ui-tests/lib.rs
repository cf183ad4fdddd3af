//! trybuild cases for loom's macros live in `fail/` and `pass/` beside this
//! file. The macros issue adds them; this package is empty until then.
