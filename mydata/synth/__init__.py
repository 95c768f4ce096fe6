"""Synthetic landing data: realistic, seeded, with latent customer types and planted defects."""
from mydata.synth.generator import (GenerationSummary, GeneratorOptions, generate, generated_truth, latent_types,
                                    subject_ci)

__all__ = ["GenerationSummary", "GeneratorOptions", "generate", "generated_truth", "latent_types", "subject_ci"]
