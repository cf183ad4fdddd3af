//! The `key = value` lists inside the attributes: parsing, checking, and the
//! error messages (unknown keys list the valid ones and suggest the closest,
//! a bare word that needs a value gets a `key = value` hint, every
//! value-type error points at the literal).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, LitStr, Path, Token, UnOp};

use crate::limits;

/// Which attribute is being expanded: decides the valid keys and wording.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Macro {
    Main,
    Test,
    Fiber,
    Profile,
}

impl Macro {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Macro::Main => "#[loom::main]",
            Macro::Test => "#[loom::test]",
            Macro::Fiber => "#[loom::fiber]",
            Macro::Profile => "#[loom::profile]",
        }
    }

    fn keys(self) -> &'static [Key] {
        use Key::*;
        match self {
            Macro::Main | Macro::Test => &[
                Backend, Threads, Pin, PinCpus, StackSize, Fibers, MaxFibers, Profile, Crate,
            ],
            Macro::Fiber => &[StackSize, Name, Profile, Crate],
            Macro::Profile => &[Crate],
        }
    }
}

/// Every key any of the macros knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Key {
    Backend,
    Threads,
    Pin,
    PinCpus,
    StackSize,
    Fibers,
    MaxFibers,
    Profile,
    Crate,
    Name,
}

impl Key {
    const ALL: [Key; 10] = [
        Key::Backend,
        Key::Threads,
        Key::Pin,
        Key::PinCpus,
        Key::StackSize,
        Key::Fibers,
        Key::MaxFibers,
        Key::Profile,
        Key::Crate,
        Key::Name,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Backend => "backend",
            Key::Threads => "threads",
            Key::Pin => "pin",
            Key::PinCpus => "pin_cpus",
            Key::StackSize => "stack_size",
            Key::Fibers => "fibers",
            Key::MaxFibers => "max_fibers",
            Key::Profile => "profile",
            Key::Crate => "crate",
            Key::Name => "name",
        }
    }

    /// How the key is written, for "did you mean" hints.
    fn example(self) -> &'static str {
        match self {
            Key::Backend => "backend = \"epoll\"",
            Key::Threads => "threads = 4",
            Key::Pin => "pin = true",
            Key::PinCpus => "pin_cpus = [0, 2]",
            Key::StackSize => "stack_size = \"64KiB\"",
            Key::Fibers => "fibers = 1024",
            Key::MaxFibers => "max_fibers = 65536",
            Key::Profile => "profile",
            Key::Crate => "crate = \"my_crate::loom\"",
            Key::Name => "name = \"conn\"",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// Where a key that is not valid on `on` belongs instead.
    fn home(self) -> &'static str {
        match self {
            Key::Name => "it names a fiber: #[loom::fiber(name = \"...\")]",
            Key::Crate => "it goes on every loom attribute",
            Key::Profile => "#[loom::profile] is the profiling itself",
            Key::StackSize => "it sizes stacks: #[loom::main], #[loom::test] or #[loom::fiber]",
            _ => "it configures the runtime: #[loom::main(...)] or #[loom::test(...)]",
        }
    }
}

/// A backend named in `backend = "..."`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Backend {
    Auto,
    IoUring,
    Epoll,
    Kqueue,
}

impl Backend {
    const NAMES: [(&'static str, Backend); 4] = [
        ("auto", Backend::Auto),
        ("io_uring", Backend::IoUring),
        ("epoll", Backend::Epoll),
        ("kqueue", Backend::Kqueue),
    ];

    /// The variant of `loom::rt::Backend`.
    pub(crate) fn variant(self) -> Ident {
        let name = match self {
            Backend::Auto => "Auto",
            Backend::IoUring => "IoUring",
            Backend::Epoll => "Epoll",
            Backend::Kqueue => "Kqueue",
        };
        Ident::new(name, Span::call_site())
    }
}

/// `backend = ...` on main (one backend) or test (one, or `"all"`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BackendChoice {
    One(Backend),
    All,
}

/// `pin = true | false | <cpu>`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pin {
    Flag(bool),
    Cpu(usize),
}

/// A value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// Everything any of the macros can be told.
pub(crate) struct Options {
    pub krate: Option<Path>,
    pub backend: Option<Spanned<BackendChoice>>,
    pub threads: Option<Spanned<usize>>,
    pub pin: Option<Spanned<Pin>>,
    pub pin_cpus: Option<Spanned<Vec<usize>>>,
    pub stack_size: Option<Spanned<usize>>,
    pub fibers: Option<Spanned<usize>>,
    pub max_fibers: Option<Spanned<usize>>,
    pub profile: bool,
    pub name: Option<Spanned<String>>,
}

impl Options {
    /// The path generated code reaches loom through (`crate = "..."`).
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote!(#path),
            None => quote!(::loom),
        }
    }
}

/// Collects every error of one expansion, so all are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(errors) => Err(errors),
            None => Ok(()),
        }
    }
}

/// One `key` or `key = value` entry, before its key is checked.
struct Entry {
    key: Ident,
    value: Option<Expr>,
}

fn parse_entries(input: ParseStream, on: Macro) -> syn::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    while !input.is_empty() {
        let key = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected an option name; {} takes `key = value` options: {}",
                    on.attr(),
                    valid_keys(on)
                ),
            )
        })?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse::<Expr>()?)
        } else if input.peek(syn::token::Paren) || input.peek(Token![:]) {
            let example =
                Key::from_name(&key.unraw().to_string()).map_or("key = value", Key::example);
            return Err(syn::Error::new(
                input.span(),
                format!("expected `=` after `{key}`: write `{example}`"),
            ));
        } else {
            None
        };
        entries.push(Entry { key, value });
        if input.is_empty() {
            break;
        }
        input
            .parse::<Token![,]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `,` between options"))?;
    }
    Ok(entries)
}

/// Parses and checks the options of one attribute. Per-key value errors and
/// unknown or duplicated keys are all collected; cross-key checks follow.
pub(crate) fn parse(args: TokenStream, on: Macro) -> syn::Result<Options> {
    let entries = (|input: ParseStream| parse_entries(input, on)).parse2(args)?;
    let mut options = Options {
        krate: None,
        backend: None,
        threads: None,
        pin: None,
        pin_cpus: None,
        stack_size: None,
        fibers: None,
        max_fibers: None,
        profile: false,
        name: None,
    };
    let mut errors = Errors::default();
    let mut seen: Vec<Key> = Vec::new();
    for entry in entries {
        let Some(key) = known_key(&entry.key, on, &mut errors) else {
            continue;
        };
        if seen.contains(&key) {
            errors.error(
                entry.key.span(),
                format!("duplicate option `{}`: give each option once", key.name()),
            );
            continue;
        }
        seen.push(key);
        if let Err(e) = apply(&mut options, key, &entry, on) {
            errors.push(e);
        }
    }
    check(&options, &mut errors);
    errors.finish().map(|()| options)
}

/// The key, if it is valid on `on`; else records why not.
fn known_key(ident: &Ident, on: Macro, errors: &mut Errors) -> Option<Key> {
    let name = ident.unraw().to_string();
    match Key::from_name(&name) {
        Some(key) if on.keys().contains(&key) => return Some(key),
        Some(key) => errors.error(
            ident.span(),
            format!(
                "`{name}` is not an option of {} ({}); its options are: {}",
                on.attr(),
                key.home(),
                valid_keys(on)
            ),
        ),
        None => {
            let hint = match closest(&name, on) {
                Some(key) => format!(" (did you mean `{}`?)", key.name()),
                None => String::new(),
            };
            errors.error(
                ident.span(),
                format!(
                    "unknown option `{name}`{hint}; the options of {} are: {}",
                    on.attr(),
                    valid_keys(on)
                ),
            );
        }
    }
    None
}

fn valid_keys(on: Macro) -> String {
    let keys: Vec<&str> = on.keys().iter().map(|key| key.name()).collect();
    keys.join(", ")
}

/// The valid key `name` most likely misspells: within two edits (one for
/// short words), one containing the other, or a name other runtimes use.
fn closest(name: &str, on: Macro) -> Option<Key> {
    let alias = match name {
        "worker_threads" | "core_threads" | "loops" => Some(Key::Threads),
        "stack" | "stack_bytes" => Some(Key::StackSize),
        "cpus" | "pin_cpu" | "core_affinity" | "affinity" => Some(Key::PinCpus),
        "driver" | "io" => Some(Key::Backend),
        _ => None,
    };
    if let Some(key) = alias.filter(|key| on.keys().contains(key)) {
        return Some(key);
    }
    let lower = name.to_ascii_lowercase();
    on.keys()
        .iter()
        .copied()
        .map(|key| (edit_distance(&lower, key.name()), key))
        .filter(|&(distance, key)| {
            let limit = if key.name().len() <= 4 { 1 } else { 2 };
            distance <= limit
                || (lower.len() >= 4
                    && (key.name().contains(&*lower) || lower.contains(key.name())))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, key)| key)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Strips the invisible groups and parentheses `macro_rules!` may add.
fn peel(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => peel(&group.expr),
        Expr::Paren(paren) => peel(&paren.expr),
        other => other,
    }
}

/// The value of `key = value`, or an error if the key was given bare.
fn value(entry: &Entry, key: Key) -> syn::Result<&Expr> {
    match &entry.value {
        Some(expr) => Ok(peel(expr)),
        None => Err(syn::Error::new(
            entry.key.span(),
            format!(
                "`{}` needs a value: did you mean `{}`?",
                key.name(),
                key.example()
            ),
        )),
    }
}

fn wrong_type(expr: &Expr, key: Key, expected: &str) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        format!(
            "`{}` takes {expected}, e.g. `{}`",
            key.name(),
            key.example()
        ),
    )
}

fn string(expr: &Expr, key: Key) -> syn::Result<&LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Ok(s),
            _ => Err(wrong_type(expr, key, "a string")),
        },
        Expr::Path(path) if path.path.get_ident().is_some() => {
            let word = path
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            Err(syn::Error::new_spanned(
                expr,
                format!(
                    "`{}` takes a string: write `{} = \"{word}\"`",
                    key.name(),
                    key.name()
                ),
            ))
        }
        _ => Err(wrong_type(expr, key, "a string")),
    }
}

/// A non-negative integer literal.
fn integer(expr: &Expr, key: Key) -> syn::Result<usize> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => int.base10_parse::<usize>().map_err(|_| {
                syn::Error::new_spanned(expr, format!("`{}` is too large", key.name()))
            }),
            _ => Err(wrong_type(expr, key, "an integer")),
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => Err(syn::Error::new_spanned(
            expr,
            format!("`{}` cannot be negative", key.name()),
        )),
        _ => Err(wrong_type(expr, key, "an integer")),
    }
}

fn boolean(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Bool(b) => Some(b.value),
            _ => None,
        },
        _ => None,
    }
}

fn spanned<T>(value: T, expr: &Expr) -> Spanned<T> {
    Spanned {
        value,
        span: expr_span(expr),
    }
}

/// A span covering the whole expression (the first token's, joined to the
/// last where the compiler allows it).
fn expr_span(expr: &Expr) -> Span {
    let tokens = quote!(#expr);
    let mut iter = tokens.into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    first.join(last).unwrap_or(first)
}

fn apply(options: &mut Options, key: Key, entry: &Entry, on: Macro) -> syn::Result<()> {
    if key == Key::Profile {
        options.profile = match &entry.value {
            None => true,
            Some(expr) => boolean(peel(expr)).ok_or_else(|| {
                syn::Error::new_spanned(
                    expr,
                    "`profile` is a flag: write `profile` (or `profile = true` / `profile = false`)",
                )
            })?,
        };
        return Ok(());
    }
    let expr = value(entry, key)?;
    match key {
        Key::Crate => {
            let lit = string(expr, key)?;
            let path = lit.parse_with(Path::parse_mod_style).map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`crate` takes the path loom is reachable at, in a string: `{}`; `{}` is not a path",
                        Key::Crate.example(),
                        lit.value()
                    ),
                )
            })?;
            options.krate = Some(path);
        }
        Key::Name => {
            let lit = string(expr, key)?;
            options.name = Some(spanned(lit.value(), expr));
        }
        Key::Backend => {
            let lit = string(expr, key)?;
            options.backend = Some(spanned(backend(lit, on)?, expr));
        }
        Key::Threads => options.threads = Some(spanned(integer(expr, key)?, expr)),
        Key::Fibers => options.fibers = Some(spanned(integer(expr, key)?, expr)),
        Key::MaxFibers => options.max_fibers = Some(spanned(integer(expr, key)?, expr)),
        Key::StackSize => options.stack_size = Some(spanned(stack_size(expr)?, expr)),
        Key::Pin => {
            let pin = match boolean(expr) {
                Some(flag) => Pin::Flag(flag),
                None => match expr {
                    Expr::Lit(lit) if matches!(lit.lit, Lit::Int(_)) => {
                        Pin::Cpu(integer(expr, key)?)
                    }
                    _ => return Err(wrong_type(expr, key, "`true`, `false` or a CPU index")),
                },
            };
            options.pin = Some(spanned(pin, expr));
        }
        Key::PinCpus => {
            let Expr::Array(array) = expr else {
                return Err(match integer(expr, key) {
                    Ok(cpu) => syn::Error::new_spanned(
                        expr,
                        format!(
                            "`pin_cpus` takes a list, one CPU per loop: write `pin_cpus = [{cpu}]`"
                        ),
                    ),
                    Err(_) => wrong_type(expr, key, "a list of CPU indices"),
                });
            };
            let cpus = array
                .elems
                .iter()
                .map(|cpu| integer(peel(cpu), key))
                .collect::<syn::Result<Vec<usize>>>()?;
            options.pin_cpus = Some(spanned(cpus, expr));
        }
        Key::Profile => unreachable!("handled above"),
    }
    Ok(())
}

fn backend(lit: &LitStr, on: Macro) -> syn::Result<BackendChoice> {
    let name = lit.value();
    if let Some(&(_, backend)) = Backend::NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(BackendChoice::One(backend));
    }
    if name == "all" {
        return match on {
            Macro::Test => Ok(BackendChoice::All),
            _ => Err(syn::Error::new(
                lit.span(),
                "`backend = \"all\"` is for #[loom::test]; a program runs on one backend: \
                 use \"auto\" (io_uring where usable, else epoll or kqueue) or name one",
            )),
        };
    }
    let mut names: Vec<&str> = Backend::NAMES.iter().map(|(n, _)| *n).collect();
    if on == Macro::Test {
        names.push("all");
    }
    let lower = name.to_ascii_lowercase().replace('-', "_");
    let hint = match lower.as_str() {
        "uring" | "iouring" => Some("io_uring"),
        _ => names
            .iter()
            .copied()
            .find(|candidate| edit_distance(&lower, candidate) <= 2),
    };
    let hint = hint.map_or_else(String::new, |n| format!(" (did you mean \"{n}\"?)"));
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    Err(syn::Error::new(
        lit.span(),
        format!(
            "unknown backend \"{name}\"{hint}; expected one of {}",
            quoted.join(", ")
        ),
    ))
}

/// `stack_size = 65536` or `stack_size = "64KiB"`, checked against the
/// runtime's limits and the 4 KiB page.
fn stack_size(expr: &Expr) -> syn::Result<usize> {
    let key = Key::StackSize;
    let bytes = match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(_) => integer(expr, key)?,
            Lit::Str(s) => parse_size(&s.value()).map_err(|m| syn::Error::new(s.span(), m))?,
            _ => return Err(wrong_type(expr, key, "a number of bytes or a size string")),
        },
        _ => {
            integer(expr, key)?;
            unreachable!("integer accepts only integer literals")
        }
    };
    let problem = if bytes < limits::MIN_STACK_BYTES {
        Some(format!(
            "`stack_size` must be at least {} ({} bytes); {} is too small for a fiber",
            human(limits::MIN_STACK_BYTES),
            limits::MIN_STACK_BYTES,
            human(bytes)
        ))
    } else if bytes > limits::MAX_STACK_BYTES {
        Some(format!(
            "`stack_size` must be at most {} ({} bytes)",
            human(limits::MAX_STACK_BYTES),
            limits::MAX_STACK_BYTES
        ))
    } else if !bytes.is_multiple_of(limits::PAGE_BYTES) {
        let down = bytes / limits::PAGE_BYTES * limits::PAGE_BYTES;
        let up = down + limits::PAGE_BYTES;
        Some(format!(
            "`stack_size` must be a multiple of the page size ({} bytes); {bytes} is not: \
             use {down} (\"{}\") or {up} (\"{}\")",
            limits::PAGE_BYTES,
            human(down),
            human(up)
        ))
    } else {
        None
    };
    match problem {
        Some(message) => Err(syn::Error::new_spanned(expr, message)),
        None => Ok(bytes),
    }
}

/// Parses `"16384"`, `"64KiB"`, `"1 MiB"`, `"1GiB"`, `"4096B"`.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    const FORMS: &str = "write a size like \"64KiB\", \"1MiB\" or \"16384\"";
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    if number.is_empty() {
        return Err(format!("\"{text}\" is not a size; {FORMS}"));
    }
    let number: usize = number
        .parse()
        .map_err(|_| format!("\"{text}\" is too large"))?;
    let unit = unit.trim_start();
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            let binary = match other.to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => Some("KiB"),
                "m" | "mb" | "mib" => Some("MiB"),
                "g" | "gb" | "gib" => Some("GiB"),
                _ => None,
            };
            return Err(match binary {
                Some(unit) => {
                    format!("unknown unit \"{other}\": sizes are binary, write \"{number}{unit}\"")
                }
                None => format!("unknown unit \"{other}\"; {FORMS} (units: B, KiB, MiB, GiB)"),
            });
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// `65536` -> `64KiB`, as a size string the user could write.
pub(crate) fn human(bytes: usize) -> String {
    for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// Checks between keys, and the ranges of numbers.
fn check(options: &Options, errors: &mut Errors) {
    let threads = options.threads.as_ref().map_or(1, |t| t.value);
    if let Some(t) = &options.threads
        && !(1..=limits::MAX_THREADS).contains(&t.value)
    {
        errors.error(
            t.span,
            format!(
                "`threads` must be from 1 to {} (one event loop per thread); {} is not",
                limits::MAX_THREADS,
                t.value
            ),
        );
    }
    for (option, key) in [
        (&options.fibers, "fibers"),
        (&options.max_fibers, "max_fibers"),
    ] {
        if let Some(n) = option
            && n.value == 0
        {
            errors.error(
                n.span,
                format!("`{key}` must be at least 1 (every loop needs a stack for its fibers)"),
            );
        }
    }
    if let Some(max) = &options.max_fibers {
        let (fibers, given) = match &options.fibers {
            Some(f) => (f.value, true),
            None => (limits::DEFAULT_FIBERS, false),
        };
        if max.value > 0 && fibers > max.value {
            let message = if given {
                format!(
                    "`max_fibers` ({}) is below `fibers` ({fibers}): the stacks reserved at \
                     start-up count towards the maximum; raise `max_fibers` or lower `fibers`",
                    max.value
                )
            } else {
                format!(
                    "`max_fibers` ({}) is below the default `fibers` ({fibers} stacks reserved \
                     at start-up); also write `fibers = {}` (or fewer)",
                    max.value, max.value
                )
            };
            errors.error(max.span, message);
        }
    }
    if let (Some(_), Some(cpus)) = (&options.pin, &options.pin_cpus) {
        errors.error(
            cpus.span,
            "`pin` and `pin_cpus` both say where loops run: keep `pin_cpus = [..]` for explicit \
             CPUs, or `pin = true` for the first CPUs this process may use",
        );
    } else if let Some(pin) = &options.pin
        && let Pin::Cpu(cpu) = pin.value
        && threads > 1
    {
        let cpus: Vec<String> = (0..threads.min(4)).map(|i| (cpu + i).to_string()).collect();
        let more = if threads > 4 { ", .." } else { "" };
        errors.error(
            pin.span,
            format!(
                "`pin = {cpu}` names one CPU, but there are {threads} loops (`threads = {threads}`): \
                 list one CPU per loop, e.g. `pin_cpus = [{}{more}]`",
                cpus.join(", ")
            ),
        );
    } else if let Some(cpus) = &options.pin_cpus
        && cpus.value.len() != threads
    {
        let n = cpus.value.len();
        let message = if n < threads {
            format!(
                "`pin_cpus` lists {n} CPU{} for {threads} loops (`threads = {threads}`): give \
                 one CPU per loop",
                if n == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "`pin_cpus` lists {n} CPUs for {threads} loop{}: add `threads = {n}`, or list \
                 one CPU per loop",
                if threads == 1 { "" } else { "s" }
            )
        };
        errors.error(cpus.span, message);
    }
    if let Some(name) = &options.name {
        if name.value.is_empty() {
            errors.error(
                name.span,
                "`name` must not be empty; leave it out to use the function's name",
            );
        } else if name.value.len() > limits::MAX_NAME_BYTES {
            errors.error(
                name.span,
                format!(
                    "`name` is {} bytes long; fiber names keep at most {} bytes",
                    name.value.len(),
                    limits::MAX_NAME_BYTES
                ),
            );
        }
    }
}
