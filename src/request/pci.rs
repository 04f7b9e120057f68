//! A flavor's PCI device requests: `pci_passthrough:alias` resolved
//! against the operator's `[pci] alias` definitions, with the flavor's or
//! image's NUMA affinity policy (Nova's `_translate_alias_to_requests`).

use super::{Flavor, ImageProps, Phase, RequestError, pci_numa_policy};
use crate::fit::host::PciRequest;

/// One `[pci] alias` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciAlias {
    pub name: String,
    pub vendor_id: String,
    pub product_id: String,
    /// `type-PCI`, `type-PF` or `type-VF`; `None` matches any.
    pub device_type: Option<String>,
    /// The alias's `numa_policy` (the flavor's or image's policy wins).
    pub numa_policy: Option<String>,
}

/// The PCI requests of a guest of `flavor` with `image`; empty without
/// `pci_passthrough:alias`.
pub fn pci_requests(
    flavor: &Flavor,
    image: &ImageProps,
    aliases: &[PciAlias],
) -> Result<Vec<PciRequest>, RequestError> {
    let Some(spec) = flavor.spec("pci_passthrough:alias") else {
        return Ok(Vec::new());
    };
    let fail = |kind, message: String| RequestError {
        phase: Phase::Pci,
        kind,
        message,
    };
    let affinity = pci_numa_policy(flavor, image)?;
    let mut out = Vec::new();
    for item in spec.split(',') {
        let (name, count) = item.split_once(':').ok_or_else(|| {
            fail(
                "PciInvalidAlias",
                format!("pci_passthrough:alias `{item}`: expected NAME:COUNT"),
            )
        })?;
        let name = name.trim();
        let alias = aliases.iter().find(|a| a.name == name).ok_or_else(|| {
            fail(
                "PciRequestAliasNotDefined",
                format!("PCI alias {name} is not defined"),
            )
        })?;
        let count: i64 = count
            .trim()
            .parse()
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                fail(
                    "PciInvalidAlias",
                    format!("pci_passthrough:alias `{item}`: the count must be a positive integer"),
                )
            })?;
        let mut spec = vec![
            ("vendor_id".to_string(), alias.vendor_id.clone()),
            ("product_id".to_string(), alias.product_id.clone()),
        ];
        if let Some(t) = &alias.device_type {
            spec.push(("dev_type".to_string(), t.clone()));
        }
        out.push(PciRequest {
            count,
            spec: vec![spec],
            numa_policy: affinity
                .clone()
                .or_else(|| alias.numa_policy.clone())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(specs: &[(&str, &str)]) -> Flavor {
        Flavor {
            name: "nfv".into(),
            vcpus: 4,
            memory_mb: 4096,
            extra_specs: specs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn aliases_become_requests_with_the_flavor_policy_first() {
        let aliases = [PciAlias {
            name: "nic".into(),
            vendor_id: "8086".into(),
            product_id: "154c".into(),
            device_type: Some("type-VF".into()),
            numa_policy: Some("preferred".into()),
        }];
        let image = ImageProps::default();
        let r = pci_requests(
            &flavor(&[("pci_passthrough:alias", "nic:2")]),
            &image,
            &aliases,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].count, r[0].numa_policy.as_str()), (2, "preferred"));
        let r = pci_requests(
            &flavor(&[
                ("pci_passthrough:alias", "nic:1"),
                ("hw:pci_numa_affinity_policy", "required"),
            ]),
            &image,
            &aliases,
        )
        .unwrap();
        assert_eq!(r[0].numa_policy, "required");
        for bad in ["gpu:1", "nic", "nic:0", "nic:x"] {
            let e = pci_requests(&flavor(&[("pci_passthrough:alias", bad)]), &image, &aliases)
                .unwrap_err();
            assert_eq!(e.phase, Phase::Pci, "{bad}");
        }
    }
}
