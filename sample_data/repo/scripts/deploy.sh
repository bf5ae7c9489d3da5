#!/bin/sh
# Deploys the web app. The key id below is fake; it is here so the readers'
# content check has something to find (AKIA + 16 capitals or digits).
export AWS_ACCESS_KEY_ID=AKIAFAKEFAKEFAKE0000
aws s3 sync web/ s3://inventory-sample-bucket/
