//! A resolver without an executable: stacks and types from tables a test fills.

use std::{collections::HashMap, sync::Arc};

use map_trace_common::event::Stack;

use crate::{pipeline::Resolve, symbols::pclntab::SourcePos, timeline::Origin};

/// Symbolizes a stack by its first return address: a pc given with [`FakeResolver::frames`] gets
/// those frames, and its call site is the first user frame (as the real symbolizer decides,
/// for Go 1.27); any other pc of a non-empty stack gets `main.f` in `/src/main.go` at
/// line = the pc, its own site. Types are named from [`FakeResolver::type_name`]'s table, or
/// `map[int]int` for any non-zero descriptor.
#[derive(Default)]
pub struct FakeResolver {
    frames: HashMap<u64, Vec<SourcePos>>,
    types: HashMap<u64, Option<Arc<str>>>,
}

impl FakeResolver {
    /// Stacks starting at `pc` symbolize to `frames` (function, file, line), innermost first.
    pub fn frames(mut self, pc: u64, frames: &[(&str, &str, u32)]) -> Self {
        let frames = frames
            .iter()
            .map(|&(function, file, line)| SourcePos {
                function: function.into(),
                file: file.into(),
                line,
                inlined: false,
            })
            .collect();
        self.frames.insert(pc, frames);
        self
    }

    /// The type descriptor at `addr` is named `name` (`None`: the symbolizer cannot name it).
    pub fn type_name(mut self, addr: u64, name: Option<&str>) -> Self {
        self.types.insert(addr, name.map(Arc::from));
        self
    }
}

impl Resolve for FakeResolver {
    fn origin(&mut self, _pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        if stack.depth == 0 {
            return None;
        }
        let pc = stack.pcs[0];
        let stack = match self.frames.get(&pc) {
            Some(frames) => frames.clone(),
            None => vec![SourcePos {
                function: "main.f".into(),
                file: "/src/main.go".into(),
                line: pc as u32,
                inlined: false,
            }],
        };
        let site = crate::symbols::packages::site(&stack, 27);
        Some(Arc::new(Origin { stack, site }))
    }

    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        match self.types.get(&addr) {
            Some(name) => name.clone(),
            None => (addr != 0).then(|| Arc::from("map[int]int")),
        }
    }
}
