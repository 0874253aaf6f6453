"""MPA and MPAMA: multi-perception prompt alignment and its Mixture-of-Experts visual adaptation."""
