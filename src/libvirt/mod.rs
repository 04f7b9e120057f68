//! libvirt: the domain XML of a placement, as Nova's libvirt driver writes
//! it (pinning, numatune, guest NUMA cells with distances, hugepages).
//! The live backend (capture and validation against a real libvirtd) is
//! not built yet.

pub mod xml;
