"""Fleet registration and de-registration (单位用户 车辆批量实名登记与解除): an enterprise builds a batch of
vehicles, names the person responsible for their cards, hands in its documents and submits the batch for
automatic checks and review; once approved, the batch's cards are registered (or de-registered) chunk by
chunk and pushed to the operator."""
