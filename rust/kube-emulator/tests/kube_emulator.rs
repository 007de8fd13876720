//! Integration tests for kube-emulator: kube-rs against every API semantic, the controllers and
//! pod outcomes, kubectl 1.32 fidelity (including `kubectl create` generators' protobuf bodies),
//! bad requests, faults, logs, port-forward and the binary.

mod kube_emulator {
    pub mod api;
    pub mod bad_requests;
    pub mod cli;
    pub mod controllers;
    pub mod events;
    pub mod faults;
    pub mod kubectl;
    pub mod kubectl_cli;
    pub mod kubectl_create;
    pub mod kubectl_port_forward;
    pub mod network_apiserver;
    pub mod network_bridge;
    pub mod network_dns;
    pub mod network_ingress;
    pub mod network_process;
    pub mod network_services;
    pub mod network_support;
    pub mod pods;
    pub mod process;
    pub mod process_exec;
    pub mod process_memory;
    pub mod rules_review;
    pub mod standins;
    pub mod support;
    pub mod watch;
}
