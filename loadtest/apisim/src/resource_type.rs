//! Description of one servable resource type (a built-in kind or one defined by a CRD).

/// A column of `kubectl get` table output (`additionalPrinterColumns` for CRDs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header, e.g. `Ready`.
    pub name: String,
    /// OpenAPI type of the cell: `string`, `integer`, `date`, ...
    pub type_: String,
    /// JSONPath into the object, e.g. `.status.phase` (CRD columns only; built-in columns are computed).
    pub json_path: String,
    /// 0 = always shown, 1 = only with `-o wide`.
    pub priority: i32,
    /// Human description.
    pub description: String,
}

/// One resource type the simulator serves, at one group/version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// List kind, e.g. `PodList`.
    pub list_kind: String,
    /// Plural resource name used in URLs, e.g. `pods`.
    pub plural: String,
    /// Singular name, e.g. `pod`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names, e.g. `["po"]`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `["all"]`.
    pub categories: Vec<String>,
    /// Whether a `/status` subresource exists (the main resource then ignores status changes).
    pub has_status: bool,
    /// Whether `generation` is maintained (bumped on spec changes).
    pub has_generation: bool,
    /// Extra printer columns (CRDs); empty for built-ins, whose columns `table` computes.
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether this type comes from a CRD (strategic merge patch is then refused, like the real server).
    pub custom: bool,
}

impl ResourceType {
    /// `apiVersion` string as it appears in objects: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}
