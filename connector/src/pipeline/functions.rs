//! The user functions of a [`Pipeline`]: `map`, `filter`, `flat_map`, `process` and their
//! `try_` forms, each a stage of one chain of boxed closures. Every element travels with its
//! event time and the [`ProcessContext`] of the record it came from.

use std::fmt;

use super::Pipeline;
use crate::process::{Collector, ProcessContext};
use crate::{ConnectorError, Result};

/// Where a stage of the chain puts an element and its event time.
pub(crate) type Emit<'a, C> = &'a mut dyn FnMut(C, i64) -> Result<()>;
/// The user functions: an input element with its context (the record it came from, its event
/// time, the watermark) in, zero or more timestamped elements out.
pub(crate) type Chain<I, C> = Box<dyn FnMut(&ProcessContext<'_>, I, Emit<'_, C>) -> Result<()> + Send>;

pub(super) fn user_error(e: impl fmt::Display) -> ConnectorError {
    ConnectorError::User(e.to_string())
}

impl<I: 'static, C: 'static, O, S, R> Pipeline<I, C, O, S, R> {
    /// Each element becomes `f(element)` (Flink's `map`).
    pub fn map<D: 'static>(self, mut f: impl FnMut(C) -> D + Send + 'static) -> Pipeline<I, D, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, D> {
            Box::new(move |ctx, i, emit| prev(ctx, i, &mut |c, ts| emit(f(c), ts)))
        })
    }

    /// [`Self::map`] with a function that can fail: an error fails the run with
    /// [`ConnectorError::User`].
    pub fn try_map<D: 'static, E: fmt::Display>(
        self,
        mut f: impl FnMut(C) -> std::result::Result<D, E> + Send + 'static,
    ) -> Pipeline<I, D, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, D> {
            Box::new(move |ctx, i, emit| prev(ctx, i, &mut |c, ts| emit(f(c).map_err(user_error)?, ts)))
        })
    }

    /// Keeps the elements for which `f` is true (Flink's `filter`).
    pub fn filter(self, mut f: impl FnMut(&C) -> bool + Send + 'static) -> Pipeline<I, C, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, C> {
            Box::new(move |ctx, i, emit| prev(ctx, i, &mut |c, ts| if f(&c) { emit(c, ts) } else { Ok(()) }))
        })
    }

    /// [`Self::filter`] with a predicate that can fail.
    pub fn try_filter<E: fmt::Display>(
        self,
        mut f: impl FnMut(&C) -> std::result::Result<bool, E> + Send + 'static,
    ) -> Pipeline<I, C, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, C> {
            Box::new(move |ctx, i, emit| {
                prev(ctx, i, &mut |c, ts| {
                    if f(&c).map_err(user_error)? {
                        emit(c, ts)
                    } else {
                        Ok(())
                    }
                })
            })
        })
    }

    /// Each element becomes zero or more elements (Flink's `flatMap`).
    pub fn flat_map<D: 'static, It: IntoIterator<Item = D>>(
        self,
        mut f: impl FnMut(C) -> It + Send + 'static,
    ) -> Pipeline<I, D, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, D> {
            Box::new(move |ctx, i, emit| {
                prev(ctx, i, &mut |c, ts| {
                    for d in f(c) {
                        emit(d, ts)?;
                    }
                    Ok(())
                })
            })
        })
    }

    /// [`Self::flat_map`] with a function that can fail.
    pub fn try_flat_map<D: 'static, It: IntoIterator<Item = D>, E: fmt::Display>(
        self,
        mut f: impl FnMut(C) -> std::result::Result<It, E> + Send + 'static,
    ) -> Pipeline<I, D, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, D> {
            Box::new(move |ctx, i, emit| {
                prev(ctx, i, &mut |c, ts| {
                    for d in f(c).map_err(user_error)? {
                        emit(d, ts)?;
                    }
                    Ok(())
                })
            })
        })
    }

    /// Each element goes to `f` with its [`ProcessContext`] (the Kafka record it came from:
    /// key, headers, topic, partition, offset and timestamp; its event time; the current
    /// watermark), and `f` emits zero or more outputs through the [`Collector`], each with
    /// the input's timestamp or one of its own (Flink's `ProcessFunction`). See
    /// [`crate::process`].
    pub fn process<D: 'static>(
        self,
        mut f: impl FnMut(C, &ProcessContext<'_>, &mut Collector<'_, D>) + Send + 'static,
    ) -> Pipeline<I, D, O, S, R> {
        self.try_process(move |c, ctx, out| {
            f(c, ctx, out);
            Ok::<(), std::convert::Infallible>(())
        })
    }

    /// [`Self::process`] with a function that can fail: an error fails the run with
    /// [`ConnectorError::User`].
    pub fn try_process<D: 'static, E: fmt::Display>(
        self,
        mut f: impl FnMut(C, &ProcessContext<'_>, &mut Collector<'_, D>) -> std::result::Result<(), E> + Send + 'static,
    ) -> Pipeline<I, D, O, S, R> {
        self.with_chain(|mut prev| -> Chain<I, D> {
            Box::new(move |ctx, i, emit| {
                prev(ctx, i, &mut |c, ts| {
                    let here = ctx.with_timestamp(ts);
                    let mut out = Collector::new(&mut *emit, ts);
                    f(c, &here, &mut out).map_err(user_error)?;
                    out.finish()
                })
            })
        })
    }
}
