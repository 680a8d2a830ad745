//! Reading the Terraform of `infra/` for the checks in `tests/terraform.rs`.

use std::path::{Path, PathBuf};

pub use hcl;
use hcl::{Block, Body, Expression};

/// Every top-level block of every `.tf` file in `dir`.
pub fn blocks(dir: &Path) -> Vec<Block> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
            let body: Body =
                hcl::parse(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", f.display()));
            body.into_blocks().collect::<Vec<_>>()
        })
        .collect()
}

/// The labels of a block as strings.
pub fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

/// The blocks `kind "type" "name"` (e.g. `resource "aws_s3_bucket" ...`) of a given type.
pub fn of_type<'a>(blocks: &'a [Block], kind: &str, ty: &str) -> Vec<&'a Block> {
    blocks
        .iter()
        .filter(|b| b.identifier() == kind && labels(b).first() == Some(&ty))
        .collect()
}

/// An attribute of a body.
pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// Nested blocks of a body with the given identifier.
pub fn nested<'a>(body: &'a Body, ident: &str) -> Vec<&'a Block> {
    body.blocks().filter(|b| b.identifier() == ident).collect()
}

/// An expression as HCL source text.
pub fn text(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap_or_default()
}

/// The string value of a literal string expression.
pub fn string(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(t) => Some(t.to_string()),
        _ => None,
    }
}

/// The keys of an object expression.
pub fn object_keys(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Object(o) => o
            .keys()
            .map(|k| k.to_string().trim_matches('"').to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// The value under `key` in an object expression.
pub fn object_get<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    match expr {
        Expression::Object(o) => o
            .iter()
            .find(|(k, _)| k.to_string().trim_matches('"') == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The string items of an array expression.
pub fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().filter_map(string).collect(),
        _ => Vec::new(),
    }
}
