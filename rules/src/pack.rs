//! Loading rule files, the built-in pack first and then each `--rules DIR` in order, and merging
//! them: later files add rules, lists and macros, `append` to lists and exceptions, and
//! `override` a rule's condition or `enabled`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{ExceptionDef, ListDef, MacroDef, RuleDef, RuleFile};

/// The built-in pack, one file per category, compiled into the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("builtin/lists.yaml", include_str!("../builtin/lists.yaml")),
    (
        "builtin/forbidden.yaml",
        include_str!("../builtin/forbidden.yaml"),
    ),
    (
        "builtin/credential-misuse.yaml",
        include_str!("../builtin/credential-misuse.yaml"),
    ),
    ("builtin/exec.yaml", include_str!("../builtin/exec.yaml")),
    (
        "builtin/rbac-escalation.yaml",
        include_str!("../builtin/rbac-escalation.yaml"),
    ),
    (
        "builtin/workload.yaml",
        include_str!("../builtin/workload.yaml"),
    ),
    (
        "builtin/persistence.yaml",
        include_str!("../builtin/persistence.yaml"),
    ),
    ("builtin/recon.yaml", include_str!("../builtin/recon.yaml")),
    ("builtin/other.yaml", include_str!("../builtin/other.yaml")),
    (
        "builtin/first-seen.yaml",
        include_str!("../builtin/first-seen.yaml"),
    ),
    (
        "builtin/sequences.yaml",
        include_str!("../builtin/sequences.yaml"),
    ),
];

/// A rule with the file it came from.
#[derive(Debug, Clone)]
pub struct SourcedRule {
    /// The rule as merged.
    pub def: RuleDef,
    /// Where it was defined.
    pub file: String,
}

/// All files merged, not yet compiled.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Lists by name, with the file that defined them.
    pub lists: HashMap<String, (ListDef, String)>,
    /// Macros by name, with the file that defined them.
    pub macros: HashMap<String, (MacroDef, String)>,
    /// Rules in definition order.
    pub rules: Vec<SourcedRule>,
    /// Files of IP addresses and CIDR blocks whose entries join a list's items, by list name
    /// (a list's `file`, an `append.lists` entry's, and `--threat-intel`).
    pub list_files: HashMap<String, Vec<PathBuf>>,
    /// Entries (a list file's text) a list holds beside its items and files: the built-in
    /// snapshot of the cloud providers' ranges, which `--cloud-ranges` files replace.
    pub list_defaults: HashMap<String, &'static str>,
}

/// The list that `--threat-intel` files feed and the built-in threat-intel rules read.
pub const THREAT_INTEL_LIST: &str = "threat_intel_ips";

/// The list that `--cloud-ranges` files (the providers' published ranges) feed.
pub const CLOUD_RANGES_LIST: &str = "cloud_provider_ips";

/// The day the embedded snapshot of the cloud providers' ranges was taken.
pub const CLOUD_RANGES_SNAPSHOT_DATE: &str = "2025-07-25";

/// AWS, Google Cloud, Azure and Oracle Cloud's published ranges of that day, merged
/// (`scripts/cloud-ranges-snapshot` writes it): `cloud_provider_ips` until `--cloud-ranges`
/// names the providers' current files.
pub const CLOUD_RANGES_SNAPSHOT: &str = include_str!("../builtin/cloud-provider-ranges.txt");

impl RuleSet {
    /// The built-in pack alone.
    pub fn builtin() -> Result<Self> {
        let mut set = RuleSet::default();
        for (file, text) in BUILTIN {
            set.merge_text(file, text)?;
        }
        set.list_defaults
            .insert(CLOUD_RANGES_LIST.to_string(), CLOUD_RANGES_SNAPSHOT);
        Ok(set)
    }

    /// The built-in pack, then every `*.yaml`/`*.yml` of each directory (in name order).
    pub fn load(dirs: &[impl AsRef<Path>]) -> Result<Self> {
        let mut set = Self::builtin()?;
        for dir in dirs {
            set.merge_dir(dir.as_ref())?;
        }
        Ok(set)
    }

    /// Merges every rules file of `dir` (or `dir` itself when it is a file).
    pub fn merge_dir(&mut self, dir: &Path) -> Result<()> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        if dir.is_file() {
            return self.merge_text(&dir.display().to_string(), &read(dir)?);
        }
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for path in files {
            self.merge_text(&path.display().to_string(), &read(&path)?)?;
        }
        Ok(())
    }

    /// Adds a file of IPs and CIDR blocks to list `name` (which must be defined), checking that
    /// it reads and parses: the error names the file and line.
    pub fn add_list_file(&mut self, name: &str, path: &Path) -> Result<()> {
        if !self.lists.contains_key(name) {
            return Err(Error::invalid(
                &path.display().to_string(),
                &format!("list {name}"),
                "a file for a list that is not defined",
            ));
        }
        crate::ip::read_list_file(path).map_err(|reason| Error::ListFile { reason })?;
        self.list_files
            .entry(name.to_string())
            .or_default()
            .push(path.to_path_buf());
        Ok(())
    }

    /// Merges one file's text.
    pub fn merge_text(&mut self, file: &str, text: &str) -> Result<()> {
        let parsed: RuleFile = if text.trim().is_empty() {
            RuleFile::default()
        } else {
            serde_norway::from_str(text).map_err(|source| Error::Yaml {
                file: file.to_string(),
                source,
            })?
        };
        // A list file's path is relative to the rules file that names it.
        let relative = |name: &str| Path::new(file).parent().unwrap_or(Path::new("")).join(name);
        let mut files = Vec::new();
        for list in parsed.lists.iter().chain(&parsed.append.lists) {
            if let Some(path) = &list.file {
                files.push((list.name.clone(), relative(path)));
            }
        }
        for list in parsed.lists {
            if let Some((_, first)) = self.lists.get(&list.name) {
                return Err(Error::invalid(
                    file,
                    &format!("list {}", list.name),
                    format!("already defined in {first}; use append.lists to add items"),
                ));
            }
            self.lists
                .insert(list.name.clone(), (list, file.to_string()));
        }
        for m in parsed.macros {
            if let Some((_, first)) = self.macros.get(&m.name) {
                return Err(Error::invalid(
                    file,
                    &format!("macro {}", m.name),
                    format!("already defined in {first}"),
                ));
            }
            self.macros.insert(m.name.clone(), (m, file.to_string()));
        }
        for def in parsed.rules {
            if let Some(first) = self.rules.iter().find(|r| r.def.id == def.id) {
                return Err(Error::invalid(
                    file,
                    &def.id,
                    format!(
                        "already defined in {}; use override to change it",
                        first.file
                    ),
                ));
            }
            self.rules.push(SourcedRule {
                def,
                file: file.to_string(),
            });
        }
        for add in parsed.append.lists {
            let Some((list, _)) = self.lists.get_mut(&add.name) else {
                return Err(Error::invalid(
                    file,
                    &format!("list {}", add.name),
                    "append to a list that is not defined",
                ));
            };
            list.items.extend(add.items);
        }
        for (name, path) in files {
            self.add_list_file(&name, &path)?;
        }
        for add in parsed.append.exceptions {
            let rule = self.rule_mut(file, &add.rule)?;
            match rule.def.exceptions.iter_mut().find(|e| e.name == add.name) {
                Some(existing) => existing.values.extend(add.values),
                None => {
                    let Some(fields) = add.fields else {
                        return Err(Error::invalid(
                            file,
                            &add.rule,
                            format!("exception {} is new, so it needs fields", add.name),
                        ));
                    };
                    rule.def.exceptions.push(ExceptionDef {
                        name: add.name,
                        fields,
                        values: add.values,
                    });
                }
            }
        }
        for o in parsed.overrides {
            let rule = self.rule_mut(file, &o.rule)?;
            if let Some(enabled) = o.enabled {
                rule.def.enabled = enabled;
            }
            if let Some(condition) = o.condition {
                rule.def.condition = condition;
                // The compile error for a bad new condition must name the file that wrote it.
                rule.file = file.to_string();
            }
        }
        Ok(())
    }

    fn rule_mut(&mut self, file: &str, id: &str) -> Result<&mut SourcedRule> {
        self.rules
            .iter_mut()
            .find(|r| r.def.id == id)
            .ok_or_else(|| Error::invalid(file, id, "no such rule to append to or override"))
    }
}
