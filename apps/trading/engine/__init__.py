"""Pure trading math (no ORM): margin, liquidation and option pricing formulas."""
