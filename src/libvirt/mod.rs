//! libvirt: the domain XML of a placement, as Nova's libvirt driver writes
//! it (pinning, numatune, guest NUMA cells, hugepages), and of the other
//! policies' bindings; the
//! backend trait with a libvirt-free default and a `virsh` implementation;
//! host capture and the validation of predictions against what libvirt
//! reports.

pub mod backend;
pub mod placement;
pub mod validate;
pub mod virsh;
pub mod xml;
