"""The local runner: serves every API route of ``template.yaml`` on loopback by calling the
same Lambda handlers with real API Gateway proxy events, with DynamoDB Local behind them."""
