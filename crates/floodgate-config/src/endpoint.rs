//! `[[endpoint]]`: path (and method) → endpoint class, validated by the
//! core's [`Endpoint::new`], whose errors are reported at the field's value.

use std::collections::HashMap;

use floodgate_core::{Endpoint, EndpointTable};

use crate::cost::{read_cost, Cost};
use crate::error::Diagnostics;
use crate::raw::RawEndpoint;
use crate::section::{Node, Section};

/// Reads every `[[endpoint]]`, in order (first match wins), and the `cost`
/// of each class that has one (the first given for a name). Returns an
/// empty table when any is invalid (the errors are in `diag`).
pub(crate) fn read_endpoints(
    node: Option<&Node<'_>>,
    diag: &mut Diagnostics<'_>,
) -> (EndpointTable, HashMap<String, Cost>) {
    let Some(array) = node.and_then(|n| n.get_ref().as_array()) else {
        return (EndpointTable::default(), HashMap::new());
    };
    let mut endpoints = Vec::new();
    let mut costs = HashMap::new();
    let mut all_valid = true;
    for element in array.iter() {
        let Some(section) = Section::<RawEndpoint>::read(element, "[[endpoint]]", diag) else {
            all_valid = false;
            continue;
        };
        let Some(endpoint) = build(&section, diag) else {
            all_valid = false;
            continue;
        };
        if let Some(node) = section.raw.cost.and(section.child("cost")) {
            match read_cost(node, endpoint.name(), diag) {
                Some(cost) => {
                    costs.entry(endpoint.name().to_string()).or_insert(cost);
                }
                None => all_valid = false,
            }
        }
        endpoints.push(endpoint);
    }
    if all_valid {
        (EndpointTable::new(endpoints), costs)
    } else {
        (EndpointTable::default(), HashMap::new())
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
