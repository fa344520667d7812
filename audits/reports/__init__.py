"""The treasurer's dashboard and the general assembly's report: figures read from the ledger,
drawn by the node as SVG, printed as a PDF; and the merchants' consent to be named in it."""
