"""Balance readings (GetBalance, GetPartnerBalance) kept as snapshots."""
