//! What an emulator instance creates on the host outside its namespaces (mount points for pod
//! volumes, cgroups), recorded in its slot directory (`network::bridge`) before it is created,
//! so that the slot's cleanup removes it on exit and after a SIGKILL. The lowest layer: the
//! network's slot cleanup and the kubelet both use it.

pub mod cgroups;
pub mod created_paths;
