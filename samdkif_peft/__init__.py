"""samdkif_peft: SA-MDKIF medical skills and the SKILL_ROUTER PEFT method for peft."""

__version__ = "0.1.0.dev0"
