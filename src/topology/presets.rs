//! Named hosts: the two machines of the source documents and current designs.

use super::Host;
use super::synth::{CpulessSpec, DistanceSpec, HugepageSpec, SynthSpec};

pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    spec: fn() -> SynthSpec,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "libvirt-2s4c",
        about: "2 sockets x 4 cores, 8 GiB: the host of the libvirt CPU & NUMA affinity post (2010)",
        spec: libvirt_2s4c,
    },
    Preset {
        name: "dl980",
        about: "HP ProLiant DL980: 8 nodes x 10 cores, 128 GiB, the SLIT of Listing 1 of 'Best practices for KVM on NUMA servers'",
        spec: dl980,
    },
    Preset {
        name: "intel-2s-snc2",
        about: "2x Xeon Gold 6230-class (20c/40t per socket) with SNC2: 4 nodes, SLIT 10/11/21, 2M and 1G pools",
        spec: intel_2s_snc2,
    },
    Preset {
        name: "epyc-2s-nps4",
        about: "2x AMD EPYC 7742-class (64c/128t per socket) in NPS4: 8 nodes, SLIT 10/12/32 as captured on SDSC Expanse",
        spec: epyc_2s_nps4,
    },
    Preset {
        name: "cxl-2s",
        about: "2-socket host with one CPU-less CXL memory expander per socket (illustrative SLIT: 14 near, 26 far)",
        spec: cxl_2s,
    },
];

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    pub fn spec(&self) -> SynthSpec {
        (self.spec)()
    }
    pub fn host(&self) -> Host {
        let mut host = self
            .spec()
            .build()
            .expect("presets are valid by construction");
        host.name = self.name.to_string();
        host
    }
}

fn base(sockets: u32, nodes_per_socket: u32, cores: u32, threads: u32, mem_mb: u64) -> SynthSpec {
    SynthSpec {
        name: None,
        sockets,
        nodes_per_socket,
        cores_per_node: cores,
        threads_per_core: threads,
        memory_mb_per_node: mem_mb,
        node_memory_mb: Vec::new(),
        hugepages: Vec::new(),
        base_page_kb: 4,
        cpuless: Vec::new(),
        distances: DistanceSpec::default(),
    }
}

fn libvirt_2s4c() -> SynthSpec {
    // `virsh nodeinfo` in the post: 8 CPUs, 2 sockets, 4 cores, 1 thread, 8179176 kB.
    let mut s = base(2, 1, 4, 1, 3994);
    s.distances = DistanceSpec {
        local: 10,
        same_socket: 10,
        other_socket: 20,
        matrix: None,
    };
    s
}

fn dl980() -> SynthSpec {
    let mut s = base(8, 1, 10, 1, 16384);
    // Listing 1 prints node 0 with 16373 MB and the others with 16384 MB.
    s.node_memory_mb = vec![16373, 16384, 16384, 16384, 16384, 16384, 16384, 16384];
    s.distances.matrix = Some(vec![
        vec![10, 12, 17, 17, 19, 19, 19, 19],
        vec![12, 10, 17, 17, 19, 19, 19, 19],
        vec![17, 17, 10, 12, 19, 19, 19, 19],
        vec![17, 17, 12, 10, 19, 19, 19, 19],
        vec![19, 19, 19, 19, 10, 12, 17, 17],
        vec![19, 19, 19, 19, 12, 10, 17, 17],
        vec![19, 19, 19, 19, 17, 17, 10, 12],
        vec![19, 19, 19, 19, 17, 17, 12, 10],
    ]);
    s
}

fn intel_2s_snc2() -> SynthSpec {
    let mut s = base(2, 2, 10, 2, 96 * 1024);
    s.hugepages = vec![
        HugepageSpec {
            size_kb: 2048,
            count: 8192,
        },
        HugepageSpec {
            size_kb: 1048576,
            count: 16,
        },
    ];
    s.distances = DistanceSpec {
        local: 10,
        same_socket: 11,
        other_socket: 21,
        matrix: None,
    };
    s
}

fn epyc_2s_nps4() -> SynthSpec {
    let mut s = base(2, 4, 16, 2, 64 * 1024);
    s.hugepages = vec![HugepageSpec {
        size_kb: 1048576,
        count: 32,
    }];
    s.distances = DistanceSpec {
        local: 10,
        same_socket: 12,
        other_socket: 32,
        matrix: None,
    };
    s
}

fn cxl_2s() -> SynthSpec {
    let mut s = base(2, 1, 32, 2, 256 * 1024);
    s.hugepages = vec![HugepageSpec {
        size_kb: 2048,
        count: 16384,
    }];
    s.cpuless = vec![
        CpulessSpec {
            memory_mb: 128 * 1024,
            socket: 0,
            near: 14,
            far: 26,
        },
        CpulessSpec {
            memory_mb: 128 * 1024,
            socket: 1,
            near: 14,
            far: 26,
        },
    ];
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_preset_builds() {
        for p in super::PRESETS {
            let h = p.host();
            assert!(!h.cells.is_empty(), "{}", p.name);
        }
        let cxl = super::find("cxl-2s").unwrap().host();
        assert_eq!(cxl.cells.iter().filter(|c| c.is_cpuless()).count(), 2);
    }
}
