//! A deterministic call-stack meter, injected into every contract before it
//! is compiled.
//!
//! Where a deep recursion overflows the native stack depends on the frame
//! sizes the compiler emits, so two validators on different architectures or
//! wasmtime versions could disagree on whether a call that recurses close to
//! the limit succeeds. The meter makes that decision in WASM itself: every
//! function adds its cost to a global on entry and subtracts it on exit, and
//! traps once the total passes [`MAX_STACK_UNITS`]. The cost of a function
//! is what its native frame can hold: [`FRAME_UNITS`] for the fixed part,
//! plus one per local (parameters included) and per slot of its deepest
//! operand stack (found by validating its body). With at most
//! [`NATIVE_BYTES_PER_UNIT`] native bytes per unit the meter fires at
//! `MAX_STACK_UNITS * NATIVE_BYTES_PER_UNIT` = 256 KiB, half of the native
//! limit, so the native limit stays a backstop that honest frames never
//! reach. (The per-unit bound is an engineering margin over cranelift's
//! frames, with callee-saved registers in the fixed part; it is not a proof
//! for every possible frame.)
//!
//! The rewrite: a new mutable `i32` global (exported as [`METER_EXPORT`], so
//! the host can tell a metered stop from a contract's own `unreachable`);
//! each function body is wrapped in a block so that a branch to the
//! function's outermost label still passes the exit, and `return` subtracts
//! first. A trap unwinds everything, and each call instantiates afresh, so
//! the global needs no reset.

use wasm_encoder::reencode::{self, Reencode, RoundtripReencoder};
use wasm_encoder::{BlockType, ConstExpr, ExportKind, GlobalType, Instruction, SectionId, ValType};
use wasmparser::{
    FuncValidatorAllocations, Operator, Parser, Payload, ValidPayload, Validator,
    WasmModuleResources,
};

/// Stack units one call chain may hold.
pub const MAX_STACK_UNITS: u32 = 16 * 1024;
/// Native stack bytes one unit stands for (see the module docs).
pub const NATIVE_BYTES_PER_UNIT: usize = 16;
/// Units of a frame's fixed part: return address, frame pointer, saved
/// registers (up to 160 bytes on aarch64), call arguments.
pub const FRAME_UNITS: u32 = 16;
/// The export under which the meter's global is visible to the host.
pub const METER_EXPORT: &str = "__ballast_stack_units";

/// The WASM features contracts may use: the deterministic subset wasmtime
/// is configured with (no SIMD, threads, exceptions, tail calls, memory64,
/// multi-memory).
fn features() -> wasmparser::WasmFeatures {
    use wasmparser::WasmFeatures as F;
    F::MUTABLE_GLOBAL
        | F::SATURATING_FLOAT_TO_INT
        | F::SIGN_EXTENSION
        | F::MULTI_VALUE
        | F::BULK_MEMORY
        | F::REFERENCE_TYPES
        | F::FLOATS
}

/// What the first pass learns of each defined function.
struct Frame {
    cost: u32,
    /// Its result types, for the block that wraps its body.
    results: Vec<ValType>,
}

/// Returns `code` with the meter injected, or why the module is refused
/// (invalid, a function with several results, or the meter's export name
/// already taken).
pub fn instrument(code: &[u8]) -> Result<Vec<u8>, String> {
    let (frames, globals) = measure(code)?;
    let mut meter = Meter {
        frames,
        next_function: 0,
        global: globals,
        global_added: false,
    };
    let mut module = wasm_encoder::Module::new();
    meter
        .parse_core_module(&mut module, Parser::new(0), code)
        .map_err(|e| format!("cannot rewrite the module: {e}"))?;
    Ok(module.finish())
}

/// Validates `code` and measures every defined function; also counts the
/// globals (the meter's global comes after them).
fn measure(code: &[u8]) -> Result<(Vec<Frame>, u32), String> {
    let mut validator = Validator::new_with_features(features());
    let mut allocations = FuncValidatorAllocations::default();
    let mut frames = Vec::new();
    let mut globals = 0u32;
    for payload in Parser::new(0).parse_all(code) {
        let payload = payload.map_err(|e| e.to_string())?;
        match &payload {
            Payload::ExportSection(exports) => {
                for export in exports.clone() {
                    if export.map_err(|e| e.to_string())?.name == METER_EXPORT {
                        return Err(format!("exports `{METER_EXPORT}`, a reserved name"));
                    }
                }
            }
            Payload::GlobalSection(section) => globals += section.count(),
            Payload::ImportSection(section) => {
                for import in section.clone().into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, wasmparser::TypeRef::Global(_)) {
                        globals += 1;
                    }
                }
            }
            _ => {}
        }
        if let ValidPayload::Func(function, body) =
            validator.payload(&payload).map_err(|e| e.to_string())?
        {
            let mut func = function.into_validator(std::mem::take(&mut allocations));
            let mut locals = body.get_binary_reader();
            func.read_locals(&mut locals).map_err(|e| e.to_string())?;
            let mut operators = body.get_operators_reader().map_err(|e| e.to_string())?;
            let mut deepest = 0;
            while !operators.eof() {
                let offset = operators.original_position();
                let operator = operators.read().map_err(|e| e.to_string())?;
                func.op(offset, &operator).map_err(|e| e.to_string())?;
                deepest = deepest.max(func.operand_stack_height());
            }
            operators.finish().map_err(|e| e.to_string())?;
            let resources = func.resources();
            let ty = resources
                .type_id_of_function(func.index())
                .ok_or("a function without a type")?;
            let results = resources
                .sub_type_at_id(ty)
                .unwrap_func()
                .results()
                .to_vec();
            if results.len() > 1 {
                return Err("a function returns several values; contracts may return one".into());
            }
            let cost = FRAME_UNITS
                .saturating_add(func.len_locals())
                .saturating_add(deepest);
            let results = results
                .iter()
                .map(|t| RoundtripReencoder.val_type(*t))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            frames.push(Frame { cost, results });
            allocations = func.into_allocations();
        }
    }
    Ok((frames, globals))
}

/// The second pass: re-encodes the module with the meter added.
struct Meter {
    frames: Vec<Frame>,
    next_function: usize,
    /// Index of the meter's global.
    global: u32,
    global_added: bool,
}

impl Meter {
    fn add_global(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
        self.global_added = true;
    }

    /// `global += delta` (`delta` may be negative), then for an increase,
    /// trap past the limit.
    fn adjust(&self, f: &mut wasm_encoder::Function, cost: u32, entering: bool) {
        f.instruction(&Instruction::GlobalGet(self.global));
        f.instruction(&Instruction::I32Const(cost as i32));
        f.instruction(&if entering {
            Instruction::I32Add
        } else {
            Instruction::I32Sub
        });
        f.instruction(&Instruction::GlobalSet(self.global));
        if entering {
            f.instruction(&Instruction::GlobalGet(self.global));
            f.instruction(&Instruction::I32Const(MAX_STACK_UNITS as i32));
            f.instruction(&Instruction::I32GtU);
            f.instruction(&Instruction::If(BlockType::Empty));
            f.instruction(&Instruction::Unreachable);
            f.instruction(&Instruction::End);
        }
    }
}

/// Section order of a core module; the meter's global section goes before
/// the first section that must follow the global section.
fn after_globals(id: SectionId) -> bool {
    matches!(
        id,
        SectionId::Export
            | SectionId::Start
            | SectionId::Element
            | SectionId::DataCount
            | SectionId::Code
            | SectionId::Data
    )
}

impl Reencode for Meter {
    type Error = String;

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), reencode::Error<String>> {
        reencode::utils::parse_global_section(self, globals, section)?;
        self.add_global(globals);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), reencode::Error<String>> {
        if !self.global_added && before.is_none_or(after_globals) {
            let mut globals = wasm_encoder::GlobalSection::new();
            self.add_global(&mut globals);
            module.section(&globals);
        }
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), reencode::Error<String>> {
        reencode::utils::parse_export_section(self, exports, section)?;
        exports.export(METER_EXPORT, ExportKind::Global, self.global);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<String>> {
        let frame = self.frames.get(self.next_function).ok_or_else(|| {
            reencode::Error::UserError("more bodies than validated functions".to_string())
        })?;
        let (cost, block) = match frame.results.as_slice() {
            [] => (frame.cost, BlockType::Empty),
            [result] => (frame.cost, BlockType::Result(*result)),
            _ => unreachable!("refused by `measure`"),
        };
        self.next_function += 1;
        let mut f = reencode::utils::new_function_with_parsed_locals(self, &body)?;
        self.adjust(&mut f, cost, true);
        f.instruction(&Instruction::Block(block));
        let mut depth = 0u32;
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let operator = reader.read()?;
            match operator {
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => depth += 1,
                Operator::End if depth == 0 => {
                    // The body's end: close the wrapper, leave, then end.
                    f.instruction(&Instruction::End);
                    self.adjust(&mut f, cost, false);
                    f.instruction(&Instruction::End);
                    continue;
                }
                Operator::End => depth -= 1,
                Operator::Return => self.adjust(&mut f, cost, false),
                _ => {}
            }
            f.instruction(&self.instruction(operator)?);
        }
        code.function(&f);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(text: &str) -> Vec<u8> {
        wat::parse_str(text).expect("valid text")
    }

    #[test]
    fn instrumented_modules_validate_and_export_the_meter() {
        let code = module(
            r#"(module
                (global $g (mut i32) (i32.const 7))
                (func $f (param i32) (result i32)
                    (if (result i32) (local.get 0)
                        (then (return (i32.const 1)))
                        (else (br 1 (i32.const 2)))))
                (func (export "call") (result i32) (call $f (i32.const 0))))"#,
        );
        let metered = instrument(&code).unwrap();
        let mut validator = Validator::new_with_features(features());
        validator.validate_all(&metered).unwrap();
        let exports: Vec<String> = Parser::new(0)
            .parse_all(&metered)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(s) => {
                    Some(s.into_iter().map(|e| e.unwrap().name.to_string()))
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(exports, vec!["call".to_string(), METER_EXPORT.to_string()]);
    }

    #[test]
    fn a_module_without_globals_gets_one_and_reserved_names_are_refused() {
        let plain = module(r#"(module (func (export "call") (result i32) (i32.const 0)))"#);
        let metered = instrument(&plain).unwrap();
        Validator::new_with_features(features())
            .validate_all(&metered)
            .unwrap();
        let squatter =
            module(r#"(module (global (export "__ballast_stack_units") i32 (i32.const 0)))"#);
        assert!(instrument(&squatter).unwrap_err().contains("reserved"));
        let pair = module(r#"(module (func (result i32 i32) (i32.const 0) (i32.const 1)))"#);
        assert!(instrument(&pair).unwrap_err().contains("several values"));
    }

    #[test]
    fn a_frame_costs_its_locals_and_deepest_operand_stack() {
        let code = module(
            r#"(module (func (param i32) (local i64 i64)
                (drop (i32.add (i32.const 1) (i32.add (i32.const 2) (i32.const 3))))))"#,
        );
        let (frames, globals) = measure(&code).unwrap();
        assert_eq!(globals, 0);
        assert_eq!(frames[0].cost, FRAME_UNITS + 3 + 3);
    }
}
