//! `[[endpoint]]`: path (and method) → endpoint class, validated by the
//! core's [`Endpoint::new`], whose errors are reported at the field's value.

use floodgate_core::{Endpoint, EndpointTable};

use crate::error::Diagnostics;
use crate::raw::RawEndpoint;
use crate::section::{Node, Section};

/// Reads every `[[endpoint]]`, in order (first match wins). Returns an
/// empty table when any is invalid (the errors are in `diag`).
pub(crate) fn read_endpoints(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> EndpointTable {
    let Some(array) = node.and_then(|n| n.get_ref().as_array()) else {
        return EndpointTable::default();
    };
    let mut endpoints = Vec::new();
    let mut all_valid = true;
    for element in array.iter() {
        match Section::<RawEndpoint>::read(element, "[[endpoint]]", diag)
            .and_then(|section| build(&section, diag))
        {
            Some(endpoint) => endpoints.push(endpoint),
            None => all_valid = false,
        }
    }
    if all_valid {
        EndpointTable::new(endpoints)
    } else {
        EndpointTable::default()
    }
}

fn build(section: &Section<'_, RawEndpoint>, diag: &mut Diagnostics<'_>) -> Option<Endpoint> {
    let raw = &section.raw;
    let errors_before = diag.len();
    for (key, present, example) in [
        ("name", raw.name.is_some(), "name = \"ai\""),
        ("path", raw.path.is_some(), "path = \"/api/chat/*\""),
    ] {
        if !present && !section.has_failed(key) {
            diag.push(
                section.header(),
                format!("[[endpoint]] needs a {key}, like {example}"),
            );
        }
    }
    let result = Endpoint::new(
        raw.name.clone().unwrap_or_else(|| "unnamed".to_string()),
        raw.path.clone().unwrap_or_else(|| "/".to_string()),
        raw.methods.clone().unwrap_or_default(),
    );
    match result {
        Ok(endpoint) => (diag.len() == errors_before)
            .then(|| endpoint.with_case_sensitive(raw.case_sensitive.unwrap_or(false))),
        Err(errors) => {
            for error in errors {
                if !section.has_failed(error.field) {
                    diag.push(section.at(error.field), error.message);
                }
            }
            None
        }
    }
}
