print("cdc")
