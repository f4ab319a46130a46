//! The SR-IOV lab harness (QEMU guest with an emulated igb NIC); scenarios arrive with the lab issue.
