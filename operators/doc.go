// Package operators holds what sluice does to records between decoding and
// delivery: compiled expressions and the filter and map steps built on them.
//
// An expression is compiled once, when a pipeline loads (Compile). Compiling
// parses it, checks it against what is known of the records (a Schema), and
// records which top-level fields it reads (Expr.Fields), so that decoders can
// skip the rest. A mistake, such as adding a string to a number, fails at load
// time with its line and column inside the expression (ExprError), never at
// run time.
//
// Evaluating an expression (Expr.Eval) reads a record's fields in place: the
// record's map is the expression's environment, so evaluation copies nothing.
// Expressions that use the record's metadata (meta.partition_key, …) see it
// through a small view that only they pay for. A record that cannot be
// evaluated — a missing field compared with >=, a string where a number was
// expected — yields an error naming the expression and the problem; the steps
// send such records to the batch's Failed list with that reason, so bad input
// is kept and explained rather than dropped or fatal.
//
// The steps (Filter, Map) implement engine.Step. They keep no state between
// batches and change batches in place.
//
// The expression language is expr-lang/expr; docs/expressions.md describes
// what sluice adds to it and what it restricts.
package operators
