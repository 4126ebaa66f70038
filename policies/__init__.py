"""kalkan's heart: the policy model, the policy document and the decision engine."""
